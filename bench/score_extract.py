#!/usr/bin/env python3
"""Field accuracy of extract records against a ground-truth JSONL.

usage: score_extract.py RECORDS.jsonl GROUND_TRUTH.jsonl [--json]

Ground truth lines carry "text_file" (its file name is matched against
the file name of the record's source.path) and one value per field.  For each field:
  exact       the value equals the truth as written (strings) or as a
              number (numbers: the truth "9.00" matches 9.0)
  normalised  both sides lower-cased, with spaces and punctuation removed
and overall: records, ok, schema_valid, parseable outputs.
"""
import json, re, signal, sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`


def norm(v):
    return re.sub(r"[\W_]+", "", str(v).lower())


def as_num(v):
    try:
        return float(str(v).replace(",", "").strip())
    except ValueError:
        return None


def main():
    recs_path, gt_path = sys.argv[1], sys.argv[2]
    gt = {}
    for line in open(gt_path, encoding="utf-8"):
        g = json.loads(line)
        gt[g["text_file"].rsplit("/", 1)[-1]] = g
    fields = [k for k in next(iter(gt.values())) if k not in ("id", "text_file")]
    n = ok = valid = 0
    exact = {f: 0 for f in fields}
    normd = {f: 0 for f in fields}
    nulls = {f: 0 for f in fields}
    have = {f: 0 for f in fields}  # records whose truth has the field
    for line in open(recs_path, encoding="utf-8"):
        r = json.loads(line)
        path = r["source"]["path"]
        g = gt.get(path.rsplit("/", 1)[-1])
        if g is None:
            continue
        n += 1
        ok += r["status"] == "ok"
        valid += r.get("schema_valid") is True
        o = r.get("output") if isinstance(r.get("output"), dict) else {}
        for f in fields:
            if f not in g:  # a few ground-truth lines lack a field: not scored
                continue
            have[f] += 1
            v, t = o.get(f), g[f]
            if v is None:
                nulls[f] += 1
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                tn = as_num(t)
                hit = tn is not None and abs(tn - v) < 0.005
                exact[f] += hit
                normd[f] += hit
            else:
                exact[f] += str(v) == str(t)
                normd[f] += norm(v) == norm(t) and norm(t) != ""
    res = {
        "records": n, "ok": ok, "schema_valid": valid,
        "valid_rate": valid / n if n else 0.0,
        "exact": {f: exact[f] / max(have[f], 1) for f in fields},
        "normalised": {f: normd[f] / max(have[f], 1) for f in fields},
        "null": {f: nulls[f] / max(have[f], 1) for f in fields},
        "scored": have,
    }
    if n:
        res["exact_mean"] = sum(res["exact"].values()) / len(fields)
        res["normalised_mean"] = sum(res["normalised"].values()) / len(fields)
    if "--json" in sys.argv:
        print(json.dumps(res))
        return
    print(f"records {n}  ok {ok}  schema_valid {valid} ({100 * res['valid_rate']:.1f}%)")
    print(f"{'field':<10} {'exact':>7} {'normalised':>11} {'null':>6}")
    for f in fields:
        print(f"{f:<10} {100 * res['exact'][f]:>6.1f}% {100 * res['normalised'][f]:>10.1f}% {100 * res['null'][f]:>5.1f}%")
    if n:
        print(f"{'mean':<10} {100 * res['exact_mean']:>6.1f}% {100 * res['normalised_mean']:>10.1f}%")


if __name__ == "__main__":
    main()
