#!/usr/bin/env python3
"""The other half of bench/tasks.sh: a shipped pipeline's documents through a
running llama-server, with the prompts docket rendered for them, token for
token (docket run with DOCKET_DUMP_PROMPTS=FILE writes every job's prompt).
Writes records shaped like docket's, for the same scorers, and prints one
JSON object with the documents, requests and wall seconds.

    tasks_llama.py --url URL --task classify|extract|summarize --dump DUMP.jsonl
        --pipeline P.json --out OUT.jsonl [--conc 8]

What llama-server is asked, per task (greedy, cache_prompt, CONC requests
in flight, in document order):
  classify   the label prompt (the answer frame included), the output
             constrained by a GBNF grammar to the pipeline's labels, written
             as docket scores them (" sport" after a frame that ends inside
             a sentence).  A constrained generation gives no distribution
             over the labels: the record's labels put all mass on the one
             generated.
  extract    each field's prompt (the answer frame included, without the
             quote docket opens for the model), the output constrained by
             "json_schema" set to the field's schema as the pipeline writes
             it (format included; a pattern anchored as llama.cpp requires,
             "^.*(P).*$").  The value is the JSON the server returns, as is:
             llama-server has no grounding.
  summarize  the map prompt of each single-chunk document (the answer frame
             included), with the pipeline's max_tokens, stop strings and
             repeat penalty; finish_reason "length" when the server stopped
             at the limit.  Documents of several chunks are left out (their
             reduce prompt holds docket's own chunk summaries).
Standard library only.
"""
import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def post(url, body, timeout=600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def run_all(url, reqs, conc):
    """reqs: list of (key, body); returns {key: response or exception}."""
    out = {}
    lock = threading.Lock()
    nxt = [0]

    def worker():
        while True:
            with lock:
                i = nxt[0]
                if i >= len(reqs):
                    return
                nxt[0] += 1
            key, body = reqs[i]
            try:
                r = post(url + "/completion", body)
            except urllib.error.HTTPError as e:
                r = e
            except Exception as e:  # noqa: BLE001 - kept as the record's error
                r = e
            with lock:
                out[key] = r

    th = [threading.Thread(target=worker) for _ in range(conc)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    return out


def gbnf_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--task", required=True, choices=["classify", "extract", "summarize"])
    ap.add_argument("--dump", required=True)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--conc", type=int, default=8)
    a = ap.parse_args()
    pl = json.load(open(a.pipeline, encoding="utf-8"))
    jobs = [json.loads(l) for l in open(a.dump, encoding="utf-8")]
    jobs = [j for j in jobs if j["path"] != "calibration"]
    docs = list(dict.fromkeys(j["path"] for j in jobs))
    gen = pl.get("generation", {})
    quote = post(a.url + "/tokenize", {"content": '"', "add_special": False})["tokens"]
    reqs, recs = [], {}

    if a.task == "classify":
        import os
        ans = pl["prompts"].get("answer")
        frame = open(os.path.join(os.path.dirname(a.pipeline), ans), encoding="utf-8").read() if ans else ""
        sp = " " if frame and not frame[-1].isspace() else ""
        grammar = "root ::= " + " | ".join(gbnf_str(sp + l) for l in pl["labels"])
        seen = set()
        for j in jobs:
            if j["role"] != "label" or (j["path"], j["chunk"]) in seen or j["chunk"] != 0:
                continue
            seen.add((j["path"], j["chunk"]))
            reqs.append((j["path"], {"prompt": j["tokens"][:j["score_from"]], "n_predict": 16,
                                     "temperature": 0, "grammar": grammar, "cache_prompt": True}))
    elif a.task == "extract":
        names = list(pl["schema"]["properties"])
        seen = set()
        for j in jobs:
            if j["chunk"] != 0:
                continue
            key = (j["path"], j["sub"])
            if j["role"] == "line" and not j.get("null_doc"):
                prompt = j["tokens"][:j["score_from"]]
            elif j["role"] == "field" and j["forced"] in (None, '"'):
                prompt = j["tokens"]
            else:
                continue
            if key in seen:
                continue
            if prompt[-len(quote):] == quote and (j["role"] == "line" or j["forced"] == '"'):
                prompt = prompt[:-len(quote)]
            seen.add(key)
            sc = dict(pl["schema"]["properties"][names[j["sub"]]])
            sc.pop("description", None)
            if "pattern" in sc and not sc["pattern"].startswith("^"):
                sc["pattern"] = "^.*(" + sc["pattern"] + ").*$"
            reqs.append((key, {"prompt": prompt, "n_predict": j["max_tokens"], "temperature": 0,
                               "json_schema": sc, "cache_prompt": True}))
    else:
        per_doc = {}
        for j in jobs:
            per_doc.setdefault(j["path"], []).append(j)
        for p, js in per_doc.items():
            if len(js) != 1 or js[0]["role"] != "map":
                continue
            body = {"prompt": js[0]["tokens"], "n_predict": js[0]["max_tokens"], "temperature": 0,
                    "repeat_penalty": gen.get("repeat_penalty", 1.0), "repeat_last_n": 64,
                    "cache_prompt": True}
            if gen.get("stop"):
                body["stop"] = gen["stop"]
            reqs.append((p, body))

    t0 = time.monotonic()
    got = run_all(a.url, reqs, a.conc)
    secs = time.monotonic() - t0
    # a pattern llama.cpp cannot turn into a grammar: asked again without it
    retry = [(k, b) for k, b in reqs if isinstance(got.get(k), urllib.error.HTTPError)
             and "json_schema" in b and "pattern" in b["json_schema"]]
    if retry:
        for _, b in retry:
            b["json_schema"].pop("pattern")
        t1 = time.monotonic()
        got.update(run_all(a.url, retry, a.conc))
        secs += time.monotonic() - t1

    errors = 0
    for key, _ in reqs:
        r = got.get(key)
        path = key[0] if isinstance(key, tuple) else key
        rec = recs.setdefault(path, {"source": {"path": path}, "status": "ok", "route": "llama-server"})
        if not isinstance(r, dict):
            rec["status"] = "error"
            rec["error"] = str(r)
            errors += 1
            continue
        content = r.get("content", "")
        if a.task == "classify":
            lab = content.strip()
            rec["output"] = lab
            rec["labels"] = {l: 1.0 if l == lab else 0.0 for l in pl["labels"]}
        elif a.task == "extract":
            o = rec.setdefault("output", {})
            try:
                o[names[key[1]]] = json.loads(content)
            except ValueError:
                o[names[key[1]]] = None
        else:
            rec["output"] = content.strip()
            rec["finish_reason"] = "length" if r.get("stop_type") == "limit" else "stop"
    with open(a.out, "w", encoding="utf-8") as f:
        for p in docs:
            if p in recs:
                f.write(json.dumps(recs[p]) + "\n")
    print(json.dumps({"documents": len(recs), "requests": len(reqs), "seconds": round(secs, 3),
                      "docs_per_s": round(len(recs) / secs, 4) if secs else None,
                      "errors": errors, "pattern_dropped": len(retry)}))


if __name__ == "__main__":
    main()
