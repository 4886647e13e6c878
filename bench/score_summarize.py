#!/usr/bin/env python3
"""Auditability of summarize records.

usage: score_summarize.py RECORDS.jsonl [--json]

For the ok records with a text output:
  unsupported   share of summaries whose "unsupported" list is not empty
                (numbers, dates, doses, names the source does not contain;
                src/runner/support.h), and items per summary
  preamble      share that open with a preamble about the answer ("Here's a
                summary...", "Sure,", "The text is/provides/describes ...",
                "This is a summary ...") instead of the summary
  cut off       share whose generation ran out of tokens (finish_reason
                length), and share that end inside a sentence (no final
                . ! ? or closing quote/bracket)
  length        mean words and characters
"""
import json, re, signal, sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)

PREAMBLE = re.compile(
    r"\s*(here('s| is| are)\b|sure\b|certainly\b|of course\b|below is\b|the following\b"
    r"|(this|the) (text|document|passage|report|note) (is|provides|describes|discusses|presents)\b"
    r"|this is a (summary|rewritten|brief)\b|i('ve| have| will)\b|summary:)", re.I)


def main():
    recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
    recs = [r for r in recs if r.get("status") == "ok" and isinstance(r.get("output"), str)]
    n = len(recs)
    if not n:
        print("no summaries")
        return
    outs = [r["output"].strip() for r in recs]
    res = {
        "records": n,
        "unsupported_share": sum(bool(r.get("unsupported")) for r in recs) / n,
        "unsupported_items": sum(len(r.get("unsupported") or []) for r in recs) / n,
        "preamble_share": sum(bool(PREAMBLE.match(o)) for o in outs) / n,
        "length_share": sum(r.get("finish_reason") == "length" for r in recs) / n,
        "mid_sentence_share": sum(not o or o[-1] not in ".!?\"')]" for o in outs) / n,
        "trimmed_share": sum(bool(r.get("trimmed")) for r in recs) / n,
        "mean_words": sum(len(o.split()) for o in outs) / n,
        "mean_chars": sum(len(o) for o in outs) / n,
        "checked": all("unsupported" in r for r in recs),
    }
    if "--json" in sys.argv:
        print(json.dumps(res))
        return
    print(f"summaries {n}: with unsupported items {100 * res['unsupported_share']:.1f}% "
          f"({res['unsupported_items']:.2f} items each), preamble {100 * res['preamble_share']:.1f}%, "
          f"cut off (length) {100 * res['length_share']:.1f}%, ending mid-sentence "
          f"{100 * res['mid_sentence_share']:.1f}%, mean {res['mean_words']:.0f} words")


if __name__ == "__main__":
    main()
