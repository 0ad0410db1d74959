"""Validates and times __FUNC__() from a candidate file; prints one JSON object per case:
{"case": "random_500", "ok": true, "samples_us": [...]}  or  {"case": ..., "ok": false, "error": "..."}

usage: bench.py --candidate FILE [--seed N] [--nonce S] [--max-reps N] CASE...

To adapt it to your function: change the case generators, reference() and the call in run_case().
Keep the checks: fresh inputs every call, every result compared, exact result type.
"""

# Bind everything the harness relies on before the candidate is imported.
import bisect
import importlib.util
import json
import os
import random
import sys
from time import perf_counter_ns as _clock

_type, _int, _len, _repr, _list = type, int, len, repr, list

FUNCTION = "__FUNC__"
BUDGET_NS = 200_000_000  # timed calls per case: as many as fit, 3..10


def reference(xs: list[int]) -> int:
    """An independent implementation to compare with (patience sorting, O(n log n))."""
    tails: list[int] = []
    for x in xs:
        i = bisect.bisect_left(tails, x)
        tails[i:i + 1] = [x]
    return _len(tails)


# Each case makes a fresh batch of inputs per call from the seeded generator.
CASES = {
    # search: shown to the model, decide acceptance
    "random_100": lambda rng: [[rng.randrange(10**6) for _ in range(100)] for _ in range(10)],
    "random_500": lambda rng: [[rng.randrange(10**6) for _ in range(500)]],
    # holdout: never shown; edge cases catch overfitting
    "edge": lambda rng: [[], [7], [3, 3, 3], _list(range(50, 0, -1)), _list(range(-60, 60)),
                         [rng.randrange(-5, 5) for _ in range(200)]],
}


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
        inputs = make(rng)
        want = [reference(xs) for xs in inputs]
        copies = [_list(xs) for xs in inputs]  # the candidate gets copies: mutation cannot hide
        got = []
        t0 = _clock()
        try:
            for xs in copies:
                got.append(fn(xs))
        except Exception as e:  # the candidate's bug, reported as a wrong result
            emit({"case": name, "ok": False, "error": f"raised {_type(e).__name__}: {e} on call {call}"})
            return
        t1 = _clock()
        for xs, g, w in zip(inputs, got, want, strict=True):
            if _type(g) is not _int or g != w:
                shown = _repr(xs[:8])[:-1] + (", ...]" if _len(xs) > 8 else "]")
                emit({"case": name, "ok": False,
                      "error": f"{FUNCTION}({shown} of length {_len(xs)}) returned {_repr(g)[:40]}, expected {w} on call {call}"})
                return
        if threads() > 1:
            emit({"case": name, "ok": False, "error": f"threads alive after call {call} (single thread only)"})
            return
        if call == 1:  # warm-up: sizes the number of timed calls
            reps = min(max(3, min(10, BUDGET_NS // max(t1 - t0, 1))), max_reps)
        else:
            samples.append((t1 - t0) / 1000.0)
    emit({"case": name, "ok": True, "samples_us": samples})


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
    fn = getattr(module, FUNCTION, None)
    if not callable(fn):
        print(f"{candidate}: no function {FUNCTION}", file=sys.stderr)
        return 1
    for name in cases:
        run_case(name, fn, seed, emit, max_reps)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
