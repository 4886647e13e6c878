#!/usr/bin/env python3
"""Field accuracy of extract records against a ground-truth JSONL.

usage: score_extract.py RECORDS.jsonl GROUND_TRUTH.jsonl [--pipeline P.json] [--json]

Ground truth lines carry "text_file" (its file name is matched against
the file name of the record's source.path) and one value per field.  For each field:
  exact       the value equals the truth as written (strings) or as a
              number (numbers: the truth "9.00" matches 9.0)
  normalised  both sides lower-cased, with spaces and punctuation removed
and overall: records, ok, schema_valid, parseable outputs, and the share of
records whose field fails its schema format (format_fail, for format: date).
With --pipeline, a field whose schema says "format": "date" asks for
YYYY-MM-DD: its truth, printed as on the receipt (25/12/2018, 12-01-19,
05 MAR 2018), is written that way before both comparisons (read day first,
or month first with the pipeline's "date_order": "mdy"; 12/28/2017 is
December 28 either way).
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


MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def iso_date(s, mdy=False):
    """The date a printed value starts with, as YYYY-MM-DD, or None."""
    s = s.strip()
    m = re.match(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)", s)
    if m:
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    else:
        m = re.match(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?!\d)", s)
        if m:
            a, b, y = int(m[1]), int(m[3]), int(m[4])
            d, mo = (b, a) if mdy else (a, b)
            if mo > 12 and d <= 12:
                d, mo = mo, d
        else:
            m = re.match(r"(\d{1,2})[ -]?([A-Za-z]{3})[A-Za-z]*[ ,-]*(\d{4}|\d{2})(?!\d)", s)
            if m and m[2].lower() in MONTHS:
                d, mo, y = int(m[1]), MONTHS.index(m[2].lower()) + 1, int(m[3])
            else:
                m = re.match(r"([A-Za-z]{3})[A-Za-z]*\.? (\d{1,2}),? (\d{4})(?!\d)", s)
                if not (m and m[1].lower() in MONTHS):
                    return None
                mo, d, y = MONTHS.index(m[1].lower()) + 1, int(m[2]), int(m[3])
        if y < 100:
            y += 2000 if y < 70 else 1900
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    return f"{y:04d}-{mo:02d}-{d:02d}"


def main():
    recs_path, gt_path = sys.argv[1], sys.argv[2]
    date_fields, mdy = set(), False
    if "--pipeline" in sys.argv:
        pl = json.load(open(sys.argv[sys.argv.index("--pipeline") + 1], encoding="utf-8"))
        for k, v in pl.get("schema", {}).get("properties", {}).items():
            if v.get("format") == "date":
                date_fields.add(k)
        mdy = pl.get("extract", {}).get("date_order") == "mdy"
    gt = {}
    for line in open(gt_path, encoding="utf-8"):
        g = json.loads(line)
        gt[g["text_file"].rsplit("/", 1)[-1]] = g
    fields = [k for k in next(iter(gt.values())) if k not in ("id", "text_file")]
    n = ok = valid = 0
    exact = {f: 0 for f in fields}
    normd = {f: 0 for f in fields}
    nulls = {f: 0 for f in fields}
    bad_format = {f: 0 for f in fields}
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
            if f in date_fields:
                t = iso_date(t, mdy) or t
                if v is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", str(v)):
                    bad_format[f] += 1
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
        "format_fail": {f: bad_format[f] for f in fields if f in date_fields},
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
    for f, k in res["format_fail"].items():
        print(f"{f}: {k} record(s) whose value fails format date")


if __name__ == "__main__":
    main()
