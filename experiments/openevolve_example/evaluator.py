"""OpenEvolve-style evaluator: evaluate(program_path) -> dict of metrics, higher combined_score is better.

Runs the program's `priority` heuristic on fixed online bin-packing instances with the
evaluator's own packing loop, checks every packing, and scores bins used against a lower bound
on the optimum: max(ceil(sum of sizes), number of items larger than half a bin).
"""

from __future__ import annotations

import importlib.util
import math
import random
import time

CAPACITY = 1.0
# (distribution, items) per instance; seeds are fixed so scores are comparable across programs
INSTANCES = [("uniform_10_70", 400, s) for s in range(3)] + [("weibull_45_3", 400, s) for s in range(3)] + [
    ("triplets_25_50", 300, s) for s in range(2)
]


def make_items(kind: str, n: int, seed: int) -> list[float]:
    rng = random.Random(f"{kind}:{seed}")
    if kind == "uniform_10_70":
        return [round(rng.uniform(0.10, 0.70), 4) for _ in range(n)]
    if kind == "weibull_45_3":  # the Weibull(45, 3) sizes of FunSearch's bin-packing study, capacity 1
        return [round(min(1.0, max(0.01, rng.weibullvariate(0.45, 3.0))), 4) for _ in range(n)]
    return [round(rng.uniform(0.25, 0.50), 4) for _ in range(n)]


def pack_with(priority, items: list[float]) -> list[list[float]]:
    """The evaluator's own online packing loop; the program only supplies the scores."""
    bins: list[list[float]] = []
    free: list[float] = []
    for item in items:
        fits = [i for i, f in enumerate(free) if f >= item - 1e-9]
        if fits:
            scores = priority(item, [free[i] for i in fits])
            if not isinstance(scores, (list, tuple)) or len(scores) != len(fits):
                raise ValueError(f"priority returned {type(scores).__name__} of length "
                                 f"{len(scores) if hasattr(scores, '__len__') else '?'}, expected a list of {len(fits)}")
            values = [float(s) for s in scores]
            if not all(math.isfinite(v) for v in values):
                raise ValueError("priority returned a NaN or infinite score")
            chosen = fits[max(range(len(fits)), key=values.__getitem__)]
        else:
            bins.append([])
            free.append(CAPACITY)
            chosen = len(bins) - 1
        bins[chosen].append(item)
        free[chosen] -= item
    return bins


def check_packing(bins: list[list[float]], items: list[float]) -> None:
    if sorted(x for b in bins for x in b) != sorted(items):
        raise ValueError("the packing lost or invented items")
    for b in bins:
        if sum(b) > CAPACITY + 1e-9:
            raise ValueError(f"a bin holds {sum(b):.4f} > capacity {CAPACITY}")


def lower_bound(items: list[float]) -> int:
    """No packing beats this: the total size, and one bin per item larger than half a bin."""
    return max(math.ceil(sum(items) / CAPACITY - 1e-9), sum(1 for x in items if x > CAPACITY / 2))


def load(program_path: str):
    spec = importlib.util.spec_from_file_location("evolved_program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(program_path: str) -> dict:
    try:
        program = load(program_path)
        used = bound = 0
        ratios = []
        t0 = time.perf_counter()
        for kind, n, seed in INSTANCES:
            items = make_items(kind, n, seed)
            bins = pack_with(program.priority, items)
            check_packing(bins, items)
            lower = lower_bound(items)
            used += len(bins)
            bound += lower
            ratios.append(lower / len(bins))
        return {
            "combined_score": sum(ratios) / len(ratios),  # 1.0 would meet the lower bound everywhere
            "bins_used": used,
            "lower_bound": bound,
            "excess_bins_pct": 100.0 * (used - bound) / bound,
            "eval_time_s": time.perf_counter() - t0,
        }
    except Exception as e:  # a broken program scores zero and says why
        return {"combined_score": 0.0, "error": f"{type(e).__name__}: {e}"}


if __name__ == "__main__":
    import sys

    print(evaluate(sys.argv[1] if len(sys.argv) > 1 else "initial_program.py"))
