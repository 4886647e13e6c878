#!/usr/bin/env python3
# Records a tests/data/arch reference with llama.cpp's llama-server (greedy,
# F32 KV cache, top-10 probabilities, the prompts of tiny-qwen3.json) and
# llama-perplexity (-c 128, 16 chunks), as the file's commands say:
#   LLAMA_BIN=.../llama.cpp/build/bin bench/arch_ref_server.py MODEL.gguf 'GENERATOR' OUT.json
import hashlib, json, math, os, re, subprocess, sys, time, urllib.request
B = os.environ['LLAMA_BIN']
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
SHARED = os.environ.get('DK_SHARED', os.path.join(ROOT, '..', 'shared'))
model, generator, out = sys.argv[1:4]
prompts = json.load(open(os.path.join(ROOT, 'tests/data/arch/tiny-qwen3.json')))
prompts = [r['prompt'] for r in prompts['results']]
port = 18977
srv = subprocess.Popen([B + '/llama-server', '-m', model, '--host', '127.0.0.1', '--port', str(port), '-t', '1',
                        '-c', '512', '-b', '512', '-np', '1', '--no-warmup', '-ctk', 'f32', '-ctv', 'f32', '-fa', 'off'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
def post(path, body):
    req = urllib.request.Request(f'http://127.0.0.1:{port}{path}', data=json.dumps(body).encode(),
                                 headers={'Content-Type': 'application/json'})
    return json.load(urllib.request.urlopen(req))
for _ in range(120):
    try:
        urllib.request.urlopen(f'http://127.0.0.1:{port}/health'); break
    except Exception:
        time.sleep(0.5)
results = []
for p in prompts:
    ids = post('/tokenize', {'content': p, 'add_special': True, 'parse_special': True})['tokens']
    r = post('/completion', {'prompt': ids, 'n_predict': 16, 'n_probs': 10, 'temperature': 0, 'top_k': 1,
                             'samplers': ['top_k', 'temperature'], 'cache_prompt': False, 'post_sampling_probs': False,
                             'ignore_eos': True, 'return_tokens': True})
    steps, gen = [], []
    for cp in r['completion_probabilities']:
        top = cp['top_logprobs']
        gen.append(cp['id'])
        steps.append({'top': [[t['id'], math.exp(t['logprob'])] for t in top],
                      'top1_top2_logprob_gap': top[0]['logprob'] - top[1]['logprob']})
    assert gen == r['tokens'], (gen, r['tokens'])
    results.append({'prompt': p, 'prompt_ids': ids, 'generated_ids': gen, 'steps': steps})
srv.terminate(); srv.wait()
ver = subprocess.run([B + '/llama-server', '--version'], capture_output=True, text=True)
ver = (ver.stdout + ver.stderr).strip().splitlines()
ver = [l for l in ver if l.startswith('version')][0]
pc = [B + '/llama-perplexity', '-m', model, '-f', os.path.join(SHARED, 'reference/ppl-text.txt'), '-c', '128', '-b', '128',
      '-t', '2', '-ctk', 'f32', '-ctv', 'f32', '-fa', 'off', '--chunks', '16']
lg = subprocess.run(pc, capture_output=True, text=True)
m = re.search(r'Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)', lg.stdout + lg.stderr)
name = os.path.basename(model)
doc = {'model': name, 'model_sha256': hashlib.sha256(open(model, 'rb').read()).hexdigest(),
       'generator': generator, 'llama_cpp': ver,
       'greedy_command': 'llama-server -m MODEL -t 1 -c 512 -b 512 -np 1 --no-warmup -ctk f32 -ctv f32 -fa off; '
                         'POST /tokenize {add_special, parse_special}, then POST /completion with those ids, '
                         'n_predict 16, n_probs 10, temperature 0, top_k 1, ignore_eos, post_sampling_probs false',
       'greedy': 'libllama through llama-server: n_ctx 512, n_batch 512, 1 thread, F32 K and V cache, flash attention '
                 'disabled; each prompt decoded, then 16 steps each decoding the argmax',
       'probabilities': "each step's 'top' is [id, prob] for the 10 largest logits, prob = exp of the server's "
                        "log-probability (a softmax over the whole vocabulary, before sampling)",
       'perplexity_command': 'llama-perplexity -m %s -f ppl-text.txt -c 128 -b 128 -t 2 -ctk f32 -ctv f32 -fa off --chunks 16' % name,
       'perplexity': {'n_ctx': 128, 'n_chunk': 16, 'final_ppl': float(m.group(1)), 'final_ppl_plusminus': float(m.group(2))},
       'results': results}
json.dump(doc, open(out, 'w'), separators=(',', ':'))
print('wrote', out, doc['perplexity'], [r['generated_ids'][:4] for r in results][:2])
