#!/usr/bin/env python3
"""The shared-prefix batch workload against a running llama-server.

N documents, each one fixed PREFIX-token instruction followed by CHUNK
distinct tokens, every one asking for GEN greedy tokens (EOS ignored, so
every document generates exactly GEN); CONC requests in flight, which with
the server's slots gives continuous batching.  Prompts are token ids drawn
from a seeded generator, as in `docket bench`, so speed does not depend on
text.  Prints one JSON object: documents/s, seconds, and how many prompt
tokens the server reports it took from its cache.

    llama_server_load.py --url http://127.0.0.1:PORT --vocab N [--docs 64]
        [--prefix 400] [--chunk 300] [--gen 64] [--conc 8] [--seed 1]

With --prefix 0 it measures plain batched decode (prefix_hit_rate null):
bench/vs-llama-server-decode.sh.

Standard library only: docket itself never talks to llama-server; this is
the other half of bench/vs-llama-server.sh.
"""
import argparse
import json
import random
import sys
import threading
import time
import urllib.request


def post(url, body, timeout):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--prefix", type=int, default=400)
    ap.add_argument("--chunk", type=int, default=300)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--conc", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    # ids 0..255 are byte and control tokens in most vocabularies: keep to
    # ordinary ones so the server's detokeniser has nothing odd to do
    lo = min(1000, a.vocab // 2)
    prefix = [rng.randrange(lo, a.vocab) for _ in range(a.prefix)]
    prompts = [prefix + [rng.randrange(lo, a.vocab) for _ in range(a.chunk)]
               for _ in range(a.docs)]

    results = [None] * a.docs
    errors = []
    next_doc = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                d = next_doc[0]
                if d >= a.docs:
                    return
                next_doc[0] += 1
            body = {"prompt": prompts[d], "n_predict": a.gen, "temperature": 0.0,
                    "top_k": 1, "cache_prompt": True, "ignore_eos": True, "stream": False}
            try:
                results[d] = post(a.url + "/completion", body, a.timeout)
            except Exception as e:  # noqa: BLE001 - reported, counted as failure
                with lock:
                    errors.append(f"document {d}: {e}")

    t0 = time.monotonic()
    th = [threading.Thread(target=worker) for _ in range(a.conc)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        print("llama_server_load: " + "; ".join(errors[:3]), file=sys.stderr)
        sys.exit(1)
    gen = sum(r.get("tokens_predicted", 0) for r in results)
    cached = sum(r.get("tokens_cached", 0) for r in results)
    evaluated = sum(r.get("timings", {}).get("prompt_n", 0) for r in results)
    if gen != a.docs * a.gen:
        print(f"llama_server_load: generated {gen} tokens, expected {a.docs * a.gen}",
              file=sys.stderr)
        sys.exit(1)
    print(json.dumps({
        "documents": a.docs, "in_flight": a.conc, "seconds": round(dt, 3),
        "docs_per_s": round(a.docs / dt, 4),
        "prompt_tokens": a.docs * (a.prefix + a.chunk),
        "prompt_tokens_evaluated": evaluated,
        "prefix_hit_rate": (round(1 - max(0, evaluated - a.docs * a.chunk)
                                  / (a.docs * a.prefix), 4) if a.prefix else None),
        "tokens_cached_reported": cached,
        "generated_tok_per_s": round(gen / dt, 2),
        # the server's own decode rate per request, prompt and HTTP excluded
        "decode_tok_per_s_per_request": round(
            sum(r.get("timings", {}).get("predicted_per_second", 0) for r in results)
            / a.docs, 2),
    }))


if __name__ == "__main__":
    main()
