"""Validates and times levenshtein() from a candidate file; prints one JSON object per case.

usage: bench.py --candidate FILE [--seed N] [--nonce S] [--max-reps N] CASE...

Every call gets a fresh batch of random string pairs; every result of every call is compared
with an independent reference (bit-parallel, Hyyrö 2001) and must be exactly an int.
"""

# Bind everything the harness relies on before the candidate is imported.
import importlib.util
import json
import os
import random
import sys
from time import perf_counter_ns as _clock

_type, _int, _len, _repr = type, int, len, repr

BUDGET_NS = 250_000_000  # timed calls per case: as many as fit, 3..10
LOWER = "abcdefghijklmnopqrstuvwxyz"
PRINTABLE = LOWER + LOWER.upper() + "0123456789 .,;:!?-'()"
WORDS = "the of and to in is was for on that with as by at from his her it an be this are or had not".split()
UNICODE = "äöüßéèñçøåœ" + "αβγδεζηθλμπσω" + "жзийклмнопр" + "的一是不了人我在有他这" + "😀🎉🚀🧠🌍👍🏽" + "e\u0301a\u0308"


def reference(a: str, b: str) -> int:
    """Levenshtein distance, bit-parallel over the shorter string (one bit per character)."""
    if _len(a) < _len(b):
        a, b = b, a
    m = _len(b)
    if m == 0:
        return _len(a)
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
        op, i = rng.randrange(4), rng.randrange(_len(chars) + 1)
        if op == 0 and i < _len(chars):
            chars[i] = rng.choice(alphabet)
        elif op == 1:
            chars.insert(i, rng.choice(alphabet))
        elif op == 2 and i < _len(chars):
            del chars[i]
        elif op == 3 and i + 1 < _len(chars):
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


def dna(rng):
    s = rand_str(rng, rng.randint(250, 350), "ACGT")
    return [(s, mutate(rng, s, 80, "ACGT"))]


def unrelated(rng):
    return [(rand_str(rng, rng.randint(100, 150), PRINTABLE), rand_str(rng, rng.randint(100, 150), PRINTABLE))
            for _ in range(3)]


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
    "dna_300": dna,  # 1 pair over ACGT, 250-350 long, 80 edits apart
    "unrelated_120": unrelated,  # 3 pairs of unrelated printable ASCII, 100-150 long
    # holdout
    "unicode_mixed": unicode_mixed,  # accents, Greek, Cyrillic, CJK, emoji, combining marks
    "edge": edge,  # empty strings, identical, long repeats, reversals
}


def short(s: str) -> str:
    return _repr(s if _len(s) <= 40 else s[:40] + "...")


def threads() -> int:
    try:
        return _len(os.listdir("/proc/self/task"))
    except OSError:
        return 1  # no /proc: cannot check


def run_case(name: str, fn, seed: int, emit, max_reps: int = 10) -> None:
    make = CASES.get(name)
    if make is None:
        emit({"case": name, "ok": False, "error": "unknown case"})
        return
    rng = random.Random(f"{seed}:{name}")
    samples: list[float] = []
    reps, call = 1, 0
    while call < reps + 1:
        call += 1
        pairs = make(rng)  # fresh inputs every call
        want = [reference(a, b) for a, b in pairs]
        got = []
        t0 = _clock()
        try:
            for a, b in pairs:
                got.append(fn(a, b))
        except Exception as e:  # the candidate's bug, reported as a wrong result
            emit({"case": name, "ok": False, "error": f"raised {_type(e).__name__}: {e} on call {call}"})
            return
        t1 = _clock()
        for (a, b), g, w in zip(pairs, got, want, strict=True):
            if _type(g) is not _int or g != w:
                emit({"case": name, "ok": False,
                      "error": f"levenshtein({short(a)}, {short(b)}) returned {_repr(g)[:40]}, expected {w} on call {call}"})
                return
        if threads() > 1:
            emit({"case": name, "ok": False, "error": f"{threads()} threads alive after call {call} (single thread only)"})
            return
        if call == 1:  # warm-up: sizes the number of timed calls
            reps = min(max(3, min(10, BUDGET_NS // max(t1 - t0, 1))), max_reps)
        else:
            samples.append((t1 - t0) / 1000.0)
    emit({"case": name, "ok": True, "samples_us": samples, "pairs": _len(pairs)})


def main(argv: list[str]) -> int:
    seed, candidate, cases, max_reps, nonce = 0, None, [], 10, None
    it = iter(argv)
    for arg in it:
        if arg == "--seed":
            seed = _int(next(it))
        elif arg == "--nonce":  # echoed in every line so looplab can tell ours from forgeries
            nonce = next(it)
        elif arg == "--max-reps":  # fewer timed calls, for quick validity checks
            max_reps = max(1, _int(next(it)))
        elif arg == "--candidate":
            candidate = next(it)
        else:
            cases.append(arg)
    if candidate is None:
        print("usage: bench.py --candidate FILE [--seed N] [--nonce S] [--max-reps N] CASE...", file=sys.stderr)
        return 2
    # The JSON goes to a private copy of stdout; the candidate's prints go nowhere.
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — lives as long as the process

    def emit(record: dict) -> None:
        if nonce is not None:
            record = {"case": record["case"], "nonce": nonce, **record}
        out.write(json.dumps(record) + "\n")
        out.flush()

    spec = importlib.util.spec_from_file_location("candidate", candidate)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # an import error is a crash: traceback on stderr, exit 1
    fn = getattr(module, "levenshtein", None)
    if not callable(fn):
        print(f"{candidate}: no function levenshtein(a, b)", file=sys.stderr)
        return 1
    for name in cases:
        run_case(name, fn, seed, emit, max_reps)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
