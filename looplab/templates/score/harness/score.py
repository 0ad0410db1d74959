"""Scores a candidate program: it prints N points in the unit square; the score is their smallest
pairwise distance (higher is better). Prints one JSON line per case (looplab's protocol).

usage: {python} -I score.py --program FILE [--nonce S] CASE...

The candidate runs in its own process (a child of this one, inside looplab's sandbox) and its
stdout is only data: this harness checks every point itself and computes the score, so a
candidate cannot report its own. This process is made non-dumpable first, so the child cannot
reach its memory or its stdout through /proc. Deterministic: the same program scores the same.
"""

import json
import math
import subprocess
import sys

from looplab.harness.py import confine

CASES = {"points_12": 12, "points_20": 20}  # case → how many points (search: 12; holdout: 20)
TIMEOUT_S = 20


def smallest_distance(points: list[list[float]]) -> float:
    return min(math.dist(p, q) for i, p in enumerate(points) for q in points[i + 1:])


def judge(program: str, n: int) -> dict:
    """Run the program for n points; a result line without the case name and nonce."""
    try:
        run = subprocess.run([sys.executable, "-E", "-s", program, str(n)], capture_output=True, text=True,
                             timeout=TIMEOUT_S, env={})
    except subprocess.TimeoutExpired:
        return {"ok": False, "failure": "timeout", "error": f"did not finish within {TIMEOUT_S} s"}
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["(no message)"])[-1][:300]
        return {"ok": False, "failure": "crash", "error": f"exited with code {run.returncode}: {last}"}
    try:
        points = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": "the last line printed is not a JSON list of [x, y] points"}
    if not isinstance(points, list) or len(points) != n:
        return {"ok": False, "error": f"expected a list of {n} points, got {type(points).__name__} of "
                f"{len(points) if isinstance(points, list) else 0}"}
    for k, p in enumerate(points):
        if (not isinstance(p, list) or len(p) != 2 or not all(type(v) in (int, float) for v in p)
                or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in p)):
            return {"ok": False, "error": f"point {k} = {str(p)[:60]} is not [x, y] inside the unit square"}
    score = smallest_distance(points)
    return {"ok": True, "score": score, "feedback": f"smallest distance {score:.6f} among {n} points"}


def main(argv: list[str]) -> int:
    confine.protect_supervisor()
    program, nonce, cases = None, None, []
    it = iter(argv)
    for arg in it:
        if arg == "--program":
            program = next(it)
        elif arg == "--nonce":
            nonce = next(it)
        else:
            cases.append(arg)
    if program is None:
        print("usage: score.py --program FILE [--nonce S] CASE...", file=sys.stderr)
        return 2
    for case in cases:
        line = judge(program, CASES[case]) if case in CASES else {"ok": False, "error": "unknown case"}
        print(json.dumps({"case": case, **({"nonce": nonce} if nonce else {}), **line}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
