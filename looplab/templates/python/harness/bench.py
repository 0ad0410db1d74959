"""__NAME__: the cases and the check of __FUNC__(); looplab's supervisor does the rest.

usage: {python} -I bench.py --candidate FILE [--nonce S] [--max-reps N] [--seed X] CASE...
prints one JSON object per case: {"case": "random_500", "ok": true, "samples_us": [...]}
                             or  {"case": ..., "ok": false, "error": "..."}

looplab.harness.py runs the candidate in a separate, confined worker process: it makes a fresh
batch of inputs for every call (from OS randomness, after the worker is up), times each call
itself, checks every result with check() below and alone prints the result lines. The worker
sees only the inputs: no case name, seed or expected value.

To adapt it to your function: change the case generators (each returns a list of argument
tuples, one per call of the target in one timed sample), reference() and check(). Keep the checks
strict: exact result types and values, odd sizes and edge values in the holdout cases.
"""

import bisect

from looplab.harness.py import main

FUNCTION = "__FUNC__"


def reference(xs: list[int]) -> int:
    """An independent implementation to compare with (patience sorting, O(n log n))."""
    tails: list[int] = []
    for x in xs:
        i = bisect.bisect_left(tails, x)
        tails[i:i + 1] = [x]
    return len(tails)


# Each case makes a fresh batch of argument tuples per call from the random.Random it is given.
CASES = {
    # search: shown to the model, decide acceptance
    "random_100": lambda rng: [([rng.randrange(10**6) for _ in range(100)],) for _ in range(10)],
    "random_500": lambda rng: [([rng.randrange(10**6) for _ in range(500)],)],
    # holdout: never shown; edge cases catch overfitting
    "edge": lambda rng: [([],), ([7],), ([3, 3, 3],), (list(range(50, 0, -1)),), (list(range(-60, 60)),),
                         ([rng.randrange(-5, 5) for _ in range(200)],)],
}


def check(args: tuple, got: object) -> str | None:
    """None when the result is right; else what was expected (the library says what was returned)."""
    want = reference(*args)
    return None if type(got) is int and got == want else f"expected {want}"


if __name__ == "__main__":
    raise SystemExit(main(FUNCTION, CASES, check))
