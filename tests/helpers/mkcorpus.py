#!/usr/bin/env python3
"""Writes a small synthetic corpus for runner tests: mkcorpus.py DIR N [SEED]
Short and long (multi-chunk) text files, one empty file and one binary file."""
import os
import random
import sys

WORDS = ("the cat dog girl boy park ball tree sun happy sad big little red blue went saw "
         "played ran jumped found friend mom dad house garden flower bird fish water day "
         "night car toy book cake said wanted liked was had with and to in on of a").split()


def sentence(rng):
    n = rng.randint(5, 12)
    w = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(w).capitalize() + "."


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        sub = os.path.join(d, f"g{i % 3}")
        os.makedirs(sub, exist_ok=True)
        paras = rng.choice([1, 1, 1, 2, 4])
        text = "\n\n".join(" ".join(sentence(rng) for _ in range(rng.randint(2, 5)))
                           for _ in range(paras))
        with open(os.path.join(sub, f"doc{i:03d}.txt"), "w") as f:
            f.write(text + "\n")
    open(os.path.join(d, "empty.txt"), "w").close()
    with open(os.path.join(d, "blob.bin"), "wb") as f:
        f.write(bytes(range(256)) * 8)


if __name__ == "__main__":
    main()
