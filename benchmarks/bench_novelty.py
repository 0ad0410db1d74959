"""Novelty-index figures (printed, not asserted): lookup time and start-up cost as the store grows.

Workloads, each of N stored valid candidates of one ~2 KB Python program:
- tuning: every stored candidate differs from the base in its constants (how real searches look);
- near-identical: a few literal-free token edits each (operators, library calls), so every stored
  candidate shares the probe's literal sequence: the adversarial case for a prefix filter.
Probes mix renamed copies (duplicates), tuned constants (new) and fresh structural edits.
"Start-up" is the first lookup of a run (the index is read from a real SQLite store then);
before this change it was spent before the first model request instead.

    python benchmarks/bench_novelty.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from looplab.config import load_experiment  # noqa: E402
from looplab.propose.context import novelty_index  # noqa: E402
from looplab.records import Outcome  # noqa: E402
from looplab.screen.novelty import NoveltyIndex  # noqa: E402
from looplab.store import Store  # noqa: E402

BASE = '''import math
import numpy as np


def objective(x, y):
    return np.sin(x) * np.cos(y) + np.sin(x * y) + (x ** 2 + y ** 2) / {c0}


def neighbour(x, y, step, rng):
    dx = rng.normal(0.0, step)
    dy = rng.normal(0.0, step)
    return min(max(x + dx, -{c1}), {c1}), min(max(y + dy, -{c1}), {c1})


def anneal(iterations={c2}, start_temp={c3}, cooling={c4}, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-{c1}, {c1}), rng.uniform(-{c1}, {c1})
    value = objective(x, y)
    best = (x, y, value)
    temp = start_temp
    for i in range(iterations):
        step = max({c5}, temp / start_temp)
        nx, ny = neighbour(x, y, step, rng)
        candidate = objective(nx, ny)
        delta = candidate - value
        if delta < 0 or rng.random() < math.exp(-delta / max(temp, 1e-12)):
            x, y, value = nx, ny, candidate
            if value < best[2]:
                best = (x, y, value)
        temp *= cooling
        if i % {c6} == 0 and temp < {c7}:
            temp = start_temp * {c8}
    return best


def restarts(count={c9}):
    results = [anneal(seed=k) for k in range(count)]
    results.sort(key=lambda r: r[2])
    return results[0]


def search_algorithm():
    x, y, value = restarts()
    return x, y, value
'''
DEFAULTS = dict(c0=20, c1=5, c2=1000, c3=1.0, c4=0.995, c5=0.01, c6=100, c7=0.001, c8=0.5, c9=4)
EDITS = [("np.sin", "np.cos"), ("np.cos", "np.sin"), (" + ", " - "), (" * ", " + "), ("min(", "max("),
         ("max(", "min("), ("< 0", "<= 0"), ("rng.normal", "rng.laplace"), ("rng.uniform", "rng.normal"),
         ("value < best[2]", "best[2] > value"), ("r[2]", "r[-1]"), ("math.exp", "np.exp"), (" / ", " * ")]


def program(rng: random.Random, tuned: bool, edits: int) -> str:
    consts = {k: (round(v * rng.uniform(0.5, 2), 4) if tuned and rng.random() < 0.5 else v)
              for k, v in DEFAULTS.items()}
    if tuned and consts == DEFAULTS:
        consts["c2"] = rng.randrange(100, 100_000)
    src = BASE.format(**consts)
    for _ in range(edits):
        old, new = rng.choice(EDITS)
        spots = [i for i in range(len(src)) if src.startswith(old, i)]
        if spots:
            at = rng.choice(spots)
            src = src[:at] + new + src[at + len(old):]
    return src


def workload(kind: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    stored = [program(rng, tuned=kind == "tuning", edits=rng.randrange(1, 4)) for _ in range(n)]
    probes = []
    for _ in range(100):
        pick = rng.random()
        if pick < 0.35:  # a renamed copy of a stored candidate: a duplicate
            probes.append(rng.choice(stored).replace("candidate", "proposal").replace("best", "top"))
        elif pick < 0.7:
            probes.append(program(rng, tuned=True, edits=rng.randrange(0, 3)))
        else:
            probes.append(program(rng, tuned=False, edits=rng.randrange(1, 4)))
    return stored, probes


def time_lookups(index, probes: list[str]) -> tuple[float, int]:
    index.nearest(probes[0])  # loads a lazy index
    times, found = [], 0
    for p in probes:
        t = time.perf_counter()
        found += index.nearest(p) is not None
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times), found


def previous_index_class():
    """The index this replaced (prefix filter over whole files), from git, for side-by-side figures."""
    try:
        text = subprocess.run(["git", "-C", str(ROOT), "show", "a7e7b1e~1:looplab/screen/novelty.py"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("novelty_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["novelty_before"] = module
    exec(compile(text, "novelty_before.py", "exec"), module.__dict__)
    return module.NoveltyIndex


def startup(tmp: Path, stored: list[str]) -> tuple[float, float]:
    """(ms to open the index at start-up, ms of the first lookup that reads it) with a real SQLite store."""
    exp = tmp / f"exp{time.monotonic_ns()}"
    exp.mkdir()
    (exp / "baseline.py").write_text("def search_algorithm():\n    return 0, 0, 0\n")
    (exp / "EXPERIMENT.md").write_text("x\n")
    (exp / "experiment.toml").write_text('[target]\nlanguage = "python"\nbaseline = "baseline.py"\n'
                                         'function = "search_algorithm"\n[evaluate]\ncommand = "true"\n'
                                         '[cases]\nsearch = ["a"]\n')
    experiment = load_experiment(exp)
    store = Store(experiment.store_path)
    for i, src in enumerate(stored):
        aid = store.begin_attempt(model="bench")
        outcome = Outcome.SLOWER if i % 2 else Outcome.COMPILE_ERROR  # failures are not read at all
        store.finish_attempt(aid, outcome=outcome, reason="", source=src, source_hash=f"h{i}", strategy="")
    t0 = time.perf_counter()
    index = novelty_index(store, experiment)
    t1 = time.perf_counter()
    index.nearest(stored[0])
    t2 = time.perf_counter()
    store.close()
    return 1000 * (t1 - t0), 1000 * (t2 - t1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [50, 1000] if args.quick else [50, 1000, 5000]
    before = previous_index_class()
    print("lookup: median ms per NoveltyIndex.nearest over 100 probes (threshold 0.95); "
          "'before' = the whole-file prefix-filter index this replaced")
    for kind in ("tuning", "near-identical"):
        for n in sizes:
            stored, probes = workload(kind, n)
            index = NoveltyIndex("python", 0.95)
            t = time.perf_counter()
            for i, src in enumerate(stored):
                index.record(i, src, Outcome.SLOWER)
            build = 1000 * (time.perf_counter() - t)
            ms, found = time_lookups(index, probes)
            line = (f"  {kind:14s} {n:5d} stored: {ms:6.3f} ms/lookup ({found:3d}/100 duplicates), "
                    f"index built in {build:7.0f} ms")
            if before is not None and n <= 1000:
                old = before("python", 0.95)
                for i, src in enumerate(stored):
                    old.add(i, src)
                old_ms, old_found = time_lookups(old, probes)
                line += f"; before: {old_ms:6.3f} ms/lookup ({old_found:3d}/100 duplicates)"
            print(line)
    print("start-up with a real SQLite store (half the stored attempts failed, so not read):")
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            stored, _ = workload("tuning", n)
            at_start, first = startup(Path(d), stored)
            print(f"  {n:5d} stored attempts: {at_start:6.2f} ms at start-up, {first:7.0f} ms in the first lookup")


if __name__ == "__main__":
    main()
