"""What the Python supervisor/worker split costs per timed call, on experiments/editdistance's cases.

For each case, the same batches are timed two ways: inside one process (the window the old
in-process harness timed: a loop calling the target) and through a confined worker (the window
the supervisor times: inputs written, results read back). With a target that returns at once the
difference is the split's fixed cost per call; with the baseline it shows what share that is.

usage: python benchmarks/bench_py_harness.py [--calls N] [--cpu K]
"""

from __future__ import annotations

import argparse
import importlib.util
import marshal
import os
import random
import statistics
import time
from pathlib import Path

from looplab.harness.py.channel import Worker
from looplab.harness.py.supervisor import BASE_IMPORTS
from looplab.harness.py.zygote import Zygote

ROOT = Path(__file__).resolve().parent.parent
EDIT = ROOT / "experiments" / "editdistance"
FASTER = ROOT / "tests" / "fixtures" / "candidates" / "editdistance" / "faster.py"  # about 5x the baseline
TRIVIAL = b"def levenshtein(a, b):\n    return 0\n"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_process(fn, batches: list) -> float:
    times = []
    for batch in batches:
        got = []
        t0 = time.perf_counter_ns()
        for a, b in batch:
            got.append(fn(a, b))
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def through_worker(source: bytes, batches: list, imports: list[str]) -> float:
    z = Zygote(source, "levenshtein", imports)
    w = Worker(z, timeout_s=30, reply_cap=8 << 20)
    try:
        times = [w.call(marshal.dumps(batch), i + 1).wall_ns for i, batch in enumerate(batches)]
    finally:
        w.close()
        z.close()
    return statistics.median(times[1:]) / 1000  # the first call is a warm-up, as in the harness


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=41)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core (looplab pins timing runs)")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    bench = load(EDIT / "harness" / "bench.py", "edit_bench")
    naive_src = (EDIT / "naive.py").read_bytes()
    naive = load(EDIT / "naive.py", "edit_naive").levenshtein
    fast = load(FASTER, "edit_faster").levenshtein
    imports = list(dict.fromkeys([*BASE_IMPORTS, "array", "bisect", "collections", "functools", "heapq",
                                  "itertools", "math", "operator", "typing"]))
    print(f"{'case':15} {'inputs':>6} {'trivial in-proc':>16} {'trivial worker':>15} {'overhead':>9} "
          f"{'naive in-proc':>14} {'naive worker':>13} {'share':>6} {'faster in-proc':>15} {'share':>6}   (medians, us)")
    for name, make in bench.CASES.items():
        rng = random.Random(name)
        batches = [make(rng) for _ in range(args.calls)]
        t_in, t_w = in_process(lambda a, b: 0, batches), through_worker(TRIVIAL, batches, imports)
        n_in, n_w = in_process(naive, batches[:11]), through_worker(naive_src, batches[:11], imports)
        f_in = in_process(fast, batches)
        print(f"{name:15} {len(batches[0]):6} {t_in:16.1f} {t_w:15.1f} {t_w - t_in:9.1f} "
              f"{n_in:14.0f} {n_w:13.0f} {100 * (t_w - t_in) / n_in:5.1f}% {f_in:15.0f} "
              f"{100 * (t_w - t_in) / f_in:5.1f}%")


if __name__ == "__main__":
    main()
