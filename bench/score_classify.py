#!/usr/bin/env python3
"""Accuracy and calibration of classify records whose true label is the
name of a directory on the source path (bbc/<label>/001.txt).

usage: score_classify.py RECORDS.jsonl [--json]

Prints accuracy, macro-F1, per-label precision/recall, the confusion matrix, and the
calibration of the reported per-label probabilities: expected calibration
error (ECE, 10 equal-width confidence bins over the chosen label), the
Brier score (over all labels), mean confidence vs accuracy, and the
reliability table.
"""
import json, signal, sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`


def main():
    recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
    recs = [r for r in recs if r["status"] == "ok" and isinstance(r.get("labels"), dict)]
    labels = sorted(recs[0]["labels"]) if recs else []
    rows = []
    for r in recs:
        parts = r["source"]["path"].split("/")
        truth = next((p for p in reversed(parts[:-1]) if p in labels), None)
        if truth is None:
            continue
        rows.append((truth, r["output"], r["labels"]))
    n = len(rows)
    correct = sum(t == o for t, o, _ in rows)
    conf = {t: {o: 0 for o in labels} for t in labels}
    for t, o, _ in rows:
        conf[t][o] += 1
    bins = [[0, 0.0, 0] for _ in range(10)]  # count, sum confidence, correct
    brier = 0.0
    for t, o, p in rows:
        c = p[o]
        b = min(int(c * 10), 9)
        bins[b][0] += 1
        bins[b][1] += c
        bins[b][2] += t == o
        brier += sum((p[l] - (l == t)) ** 2 for l in labels)
    ece = sum(abs(s / k - h / k) * k / n for k, s, h in bins if k) if n else 0.0
    res = {
        "records": n,
        "accuracy": correct / n if n else 0.0,
        "mean_confidence": sum(p[o] for _, o, p in rows) / n if n else 0.0,
        "ece": ece,
        "brier": brier / n if n else 0.0,
        "per_label": {},
        "confusion": conf,
        "reliability": [{"bin": f"{i / 10:.1f}-{(i + 1) / 10:.1f}", "n": k,
                         "confidence": s / k if k else None, "accuracy": h / k if k else None}
                        for i, (k, s, h) in enumerate(bins)],
    }
    f1s = []
    for l in labels:
        tp = conf[l][l]
        pred = sum(conf[t][l] for t in labels)
        true = sum(conf[l].values())
        p_, r_ = tp / pred if pred else 0.0, tp / true if true else 0.0
        res["per_label"][l] = {"precision": p_, "recall": r_}
        f1s.append(2 * p_ * r_ / (p_ + r_) if p_ + r_ else 0.0)
    res["macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
    if "--json" in sys.argv:
        print(json.dumps(res))
        return
    print(f"records {n}  accuracy {100 * res['accuracy']:.1f}%  macro-F1 {res['macro_f1']:.3f}"
          f"  mean confidence {res['mean_confidence']:.3f}"
          f"  ECE {res['ece']:.3f}  Brier {res['brier']:.3f}")
    print(f"{'label':<15} {'precision':>9} {'recall':>7}   confusion (row: truth)")
    for l in labels:
        pl = res["per_label"][l]
        print(f"{l:<15} {100 * pl['precision']:>8.1f}% {100 * pl['recall']:>6.1f}%   " +
              " ".join(f"{conf[l][o]:>4}" for o in labels))
    print("reliability (confidence bin: n, mean confidence, accuracy)")
    for b in res["reliability"]:
        if b["n"]:
            print(f"  {b['bin']}: {b['n']:>4}  {b['confidence']:.3f}  {b['accuracy']:.3f}")


if __name__ == "__main__":
    main()
