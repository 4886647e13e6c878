#!/usr/bin/env python3
"""Checks and compares docket output files (JSONL records).

  records.py compare A.jsonl B.jsonl   same records as sets keyed by id, ignoring
                                       timing_ms, created and usage.cached_tokens (which
                                       depend on what the prefix cache held)
  records.py check OUT.jsonl [--task T] [--min N] [--status S] [--per-chunk]
                                       every line is a well-formed record
  records.py field OUT.jsonl EXPR      prints EXPR (python, r = record) per line
"""
import json
import os
import sys

VOLATILE = ("timing_ms", "created")


def load(path):
    recs = {}
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise SystemExit(f"{path}: torn last line")
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        r = json.loads(line)
        rid = r.get("id")
        if rid is None:
            raise SystemExit(f"{path}:{n}: record without id")
        if rid in recs:
            raise SystemExit(f"{path}:{n}: duplicate id {rid}")
        recs[rid] = r
    return recs


def norm(r):
    r = dict(r)
    for k in VOLATILE:
        r.pop(k, None)
    if isinstance(r.get("usage"), dict):
        u = dict(r["usage"])
        u.pop("cached_tokens", None)
        r["usage"] = u
    # OpenAI batch lines carry a creation time
    resp = r.get("response")
    if isinstance(resp, dict) and isinstance(resp.get("body"), dict):
        resp = dict(resp)
        body = dict(resp["body"])
        body.pop("created", None)
        resp["body"] = body
        r["response"] = resp
    return r


def compare(a, b):
    ra, rb = load(a), load(b)
    lost = sorted(set(ra) - set(rb))
    extra = sorted(set(rb) - set(ra))
    diff = [k for k in ra if k in rb and norm(ra[k]) != norm(rb[k])]
    for k in lost[:5]:
        print(f"missing from {b}: {k} {ra[k]['source']['path']}")
    for k in extra[:5]:
        print(f"extra in {b}: {k}")
    for k in diff[:5]:
        print(f"differs: {k}\n  {json.dumps(norm(ra[k]))}\n  {json.dumps(norm(rb[k]))}")
    print(f"{len(ra)} vs {len(rb)} records: {len(lost)} lost, {len(extra)} extra, {len(diff)} differ")
    return 1 if lost or extra or diff else 0


def check(path, args):
    recs = load(path)
    task = None
    minimum = 1
    status = None
    per_chunk = "--per-chunk" in args
    if "--task" in args:
        task = args[args.index("--task") + 1]
    if "--min" in args:
        minimum = int(args[args.index("--min") + 1])
    if "--status" in args:
        status = args[args.index("--status") + 1]
    if len(recs) < minimum:
        raise SystemExit(f"{path}: {len(recs)} records, expected at least {minimum}")
    for rid, r in recs.items():
        def need(cond, what):
            if not cond:
                raise SystemExit(f"{path}: record {rid}: {what}: {json.dumps(r)[:400]}")
        for k in ("id", "source", "pipeline", "model", "status", "output", "usage", "timing_ms", "route"):
            need(k in r, f"missing {k}")
        s = r["source"]
        for k in ("path", "member", "mime", "bytes", "sha256"):
            need(k in s, f"source lacks {k}")
        need(len(s["sha256"]) == 64 or r["status"] == "skipped", "bad sha256")
        need(r["pipeline"]["name"] and len(r["pipeline"]["hash"]) == 64, "bad pipeline")
        need(len(r["model"]["sha256"]) == 64, "bad model sha256")
        need(r["status"] in ("ok", "skipped", "error"), "bad status")
        need(r["route"] in ("local", "fallback"), "bad route")
        for k in ("prompt_tokens", "cached_tokens", "completion_tokens"):
            need(isinstance(r["usage"][k], int) and r["usage"][k] >= 0, f"bad usage.{k}")
        need(r["usage"]["cached_tokens"] <= r["usage"]["prompt_tokens"], "cached > prompt")
        if status:
            need(r["status"] == status, f"status is not {status}")
        if r["status"] == "skipped":
            need(isinstance(r.get("skip_reason"), str), "skipped without skip_reason")
        if r["status"] == "error":
            need(isinstance(r.get("error"), str), "error without message")
        if per_chunk and r["status"] != "skipped":
            c = r.get("chunk")
            need(isinstance(c, dict), "per-chunk record without chunk")
            for k in ("index", "count", "start", "end", "tokens"):
                need(isinstance(c.get(k), int), f"chunk.{k}")
            need(0 <= c["index"] < c["count"] and c["start"] < c["end"], "chunk range")
        if r["status"] == "ok":
            t = task or r["pipeline"].get("task")
            o = r["output"]
            if t in ("summarize", "generate"):
                need(isinstance(o, str), "output is not a string")
            elif t == "classify":
                labels = r.get("labels")
                need(isinstance(o, str) and isinstance(labels, dict) and o in labels, "bad label")
                need(abs(sum(labels.values()) - 1) < 1e-3, "label probabilities do not sum to 1")
                need(max(labels, key=labels.get) == o, "label is not the most probable")
            elif t == "extract":
                need(isinstance(o, dict), "extract output is not an object")
                need(isinstance(r.get("schema_valid"), bool), "no schema_valid")
    print(f"{path}: {len(recs)} records ok")
    return 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "compare":
        return compare(sys.argv[2], sys.argv[3])
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3:])
    if len(sys.argv) == 4 and sys.argv[1] == "field":
        out = "".join(f"{eval(sys.argv[3], {}, {'r': r})}\n" for r in load(sys.argv[2]).values())
        try:
            sys.stdout.write(out)
            sys.stdout.flush()
        except BrokenPipeError:  # a reader like grep -q may stop early
            os._exit(0)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
