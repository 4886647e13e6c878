#!/usr/bin/env python3
"""Scores classify-files records against hand labels (path -> label JSON):
per-label recall and precision, overall accuracy, the confusions, and
whether every labelled file has a record.
usage: score_classify_files.py RECORDS.jsonl LABELS.json [--show-errors]"""
import json
import sys
from collections import Counter, defaultdict

recs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    recs[r["source"]["path"]] = r
gold = json.load(open(sys.argv[2]))
show = "--show-errors" in sys.argv
n = ok = 0
per = defaultdict(lambda: [0, 0])   # label -> [right, total] (recall)
pred = Counter()
right_pred = Counter()
conf = Counter()
missing = []
errors = []
for path, g in sorted(gold.items()):
    r = recs.get(path)
    if r is None:
        missing.append(path)
        continue
    p = r.get("output") if r.get("status") == "ok" else "(" + r.get("status", "?") + ")"
    n += 1
    per[g][1] += 1
    pred[p] += 1
    if p == g:
        ok += 1
        per[g][0] += 1
        right_pred[p] += 1
    else:
        conf[(g, p)] += 1
        errors.append((path, g, p, r.get("labels", {}).get(p)))
print(f"files labelled {len(gold)}, with a record {n}, missing {len(missing)}")
print(f"accuracy {ok}/{n} = {100 * ok / max(n, 1):.1f}%")
print(f"{'label':<14} {'files':>5} {'recall':>7} {'precision':>9}")
for lab in sorted(per, key=lambda k: -per[k][1]):
    r, t = per[lab]
    prec = f"{100 * right_pred[lab] / pred[lab]:.0f}%" if pred[lab] else "-"
    print(f"{lab:<14} {t:>5} {100 * r / t:>6.0f}% {prec:>9}")
if conf:
    print("confusions (label -> predicted: files): " +
          ", ".join(f"{g}->{p}: {c}" for (g, p), c in conf.most_common()))
for m in missing[:20]:
    print("no record:", m)
if show:
    for e in errors:
        print("wrong:", *e)
