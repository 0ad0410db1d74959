"""editdistance: cases and the reference check of levenshtein(a, b); looplab's supervisor does the rest.

usage: {python} -I bench.py --candidate FILE [--nonce S] [--max-reps N] [--seed X] CASE...

The supervisor (looplab.harness.py) runs the candidate in a confined worker process, gives it a
fresh batch of random string pairs every call (from OS randomness, made after the worker is up),
times each call itself and compares every result of every call with the independent reference
below (bit-parallel, Hyyrö 2001): it must be exactly an int. The worker sees only the pairs: no
case name, seed, nonce or expected value, so holdout cases look like any other input.
"""

import random

from looplab.harness.py import main

LOWER = "abcdefghijklmnopqrstuvwxyz"
PRINTABLE = LOWER + LOWER.upper() + "0123456789 .,;:!?-'()"
WORDS = "the of and to in is was for on that with as by at from his her it an be this are or had not".split()
UNICODE = "äöüßéèñçøåœ" + "αβγδεζηθλμπσω" + "жзийклмнопр" + "的一是不了人我在有他这" + "😀🎉🚀🧠🌍👍🏽" + "e\u0301a\u0308"


def reference(a: str, b: str) -> int:
    """Levenshtein distance, bit-parallel over the shorter string (one bit per character)."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask, high = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def mutate(rng: random.Random, s: str, edits: int, alphabet: str) -> str:
    """s with `edits` random substitutions, insertions, deletions and adjacent swaps."""
    chars = list(s)
    for _ in range(edits):
        op, i = rng.randrange(4), rng.randrange(len(chars) + 1)
        if op == 0 and i < len(chars):
            chars[i] = rng.choice(alphabet)
        elif op == 1:
            chars.insert(i, rng.choice(alphabet))
        elif op == 2 and i < len(chars):
            del chars[i]
        elif op == 3 and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def rand_str(rng: random.Random, n: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def short_words(rng):
    out = []
    for _ in range(300):
        w = rand_str(rng, rng.randint(3, 12), LOWER)
        out.append((w, mutate(rng, w, rng.randint(1, 3), LOWER)))
    return out


def sentences(rng):
    out = []
    for _ in range(6):
        s = " ".join(rng.choice(WORDS) for _ in range(30))[:100]
        out.append((s, mutate(rng, s, 10, LOWER + " ")))
    return out


# Search cases keep their sizes fixed and randomise only the contents: candidate and incumbent get
# different inputs (OS randomness), so a cost that moved with the draw would be noise in the comparison.


def dna(rng):
    s = rand_str(rng, 300, "ACGT")
    return [(s, mutate(rng, s, 80, "ACGT"))]


def unrelated(rng):
    return [(rand_str(rng, 120, PRINTABLE), rand_str(rng, 120, PRINTABLE)) for _ in range(3)]


def unicode_mixed(rng):
    out = []
    for _ in range(60):
        s = rand_str(rng, rng.randint(0, 60), UNICODE + LOWER)
        out.append((s, mutate(rng, s, rng.randint(0, 8), UNICODE)))
    return out


def edge(rng):
    n, k = rng.randint(100, 300), rng.randint(50, 150)
    w = rand_str(rng, rng.randint(1, 40), PRINTABLE)
    return [
        ("", ""), ("", w), (w, ""), (w, w), ("a", "b"), ("a", "a"), (w, w[::-1]),
        ("a" * n, "a" * (n - rng.randint(1, 50))), ("ab" * k, "ba" * k), ("a" * n, "b" * k),
        (w * 5, w * 4 + "x"), ("\x00" + w, w + "\x00"), (w.upper(), w.lower()),
    ]


CASES = {
    # search
    "short_words": short_words,  # 300 typo pairs, 3-12 letters
    "sentences_100": sentences,  # 6 pairs of 100-character sentences, 10 edits
    "dna_300": dna,  # 1 pair over ACGT, 300 long, 80 edits apart
    "unrelated_120": unrelated,  # 3 pairs of unrelated printable ASCII, 120 long
    # holdout
    "unicode_mixed": unicode_mixed,  # accents, Greek, Cyrillic, CJK, emoji, combining marks
    "edge": edge,  # empty strings, identical, long repeats, reversals
}


def check(args: tuple[str, str], got: object) -> str | None:
    """None when got is exactly the int distance, else what was expected."""
    want = reference(*args)
    return None if type(got) is int and got == want else f"expected {want}"


if __name__ == "__main__":
    raise SystemExit(main("levenshtein", CASES, check))
