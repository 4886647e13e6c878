#!/usr/bin/env python3
"""Writes a vocabulary-only GGUF whose token ID is LEN bytes long, for tests
of hostile vocabularies:

    gguf_vocab.py OUT ID LEN [SRC.gguf]

With SRC, every tokenizer.* key is copied from it and token ID's text is
replaced by LEN bytes of "ab" repeated (so a grammar like ("a" "b")* walks a
new parse state at every byte).  Without SRC, a minimal gpt2 vocabulary is
written: the bytes of "ab{}\\" and a space, then the long token, then
"<|endoftext|>" (the end of generation id), with no merges."""
import struct
import sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def rd(f, fmt):
    fmt = "<" + fmt
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))


def rstr(f):
    (n,) = rd(f, "Q")
    return f.read(n)


def skip(f, t):
    """Reads a value of type t; returns its raw bytes."""
    start = f.tell()
    if t in SIZES:
        f.read(SIZES[t])
    elif t == 8:
        rstr(f)
    elif t == 9:
        et, n = rd(f, "IQ")
        for _ in range(n):
            skip(f, et)
    else:
        raise ValueError("unknown type %d" % t)
    end = f.tell()
    f.seek(start)
    return f.read(end - start)


def wstr(b):
    return struct.pack("<Q", len(b)) + b


def str_array(items):
    return struct.pack("<IQ", 8, len(items)) + b"".join(wstr(s) for s in items)


def long_text(n):
    return (b"ab" * (n // 2 + 1))[:n]


def from_source(src, tid, n):
    kvs = []
    with open(src, "rb") as f:
        assert f.read(4) == b"GGUF"
        f.read(4)
        _, nkv = rd(f, "QQ")
        for _ in range(nkv):
            k = rstr(f)
            (t,) = rd(f, "I")
            raw = skip(f, t)
            if not k.startswith(b"tokenizer."):
                continue
            if k == b"tokenizer.ggml.tokens":
                body = raw[12:]
                toks, off = [], 0
                while off < len(body):
                    (m,) = struct.unpack_from("<Q", body, off)
                    toks.append(body[off + 8 : off + 8 + m])
                    off += 8 + m
                toks[tid] = long_text(n)
                raw = str_array(toks)
            kvs.append((k, t, raw))
    return kvs


def minimal(tid, n):
    toks = [bytes([c]) for c in b'ab{}"'] + [b"\xc4\xa0"]  # gpt2 spells ' ' as U+0120
    toks.insert(min(tid, len(toks)), long_text(n))
    toks.append(b"<|endoftext|>")
    return [
        (b"tokenizer.ggml.model", 8, wstr(b"gpt2")),
        (b"tokenizer.ggml.tokens", 9, str_array(toks)),
        (b"tokenizer.ggml.merges", 9, str_array([])),
        (b"tokenizer.ggml.eos_token_id", 4, struct.pack("<I", len(toks) - 1)),
    ]


def main():
    out, tid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kvs = from_source(sys.argv[4], tid, n) if len(sys.argv) > 4 else minimal(tid, n)
    kvs.insert(0, (b"general.architecture", 8, wstr(b"llama")))
    with open(out, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)))
        for k, t, raw in kvs:
            f.write(wstr(k) + struct.pack("<I", t) + raw)


if __name__ == "__main__":
    main()
