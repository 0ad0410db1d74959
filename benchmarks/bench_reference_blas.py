"""Measure what a tuned BLAS (NumPy's matmul, one thread) reaches on experiments/linear's shapes.

Writes experiments/linear/reference.json: GFLOP/s and median time per case, with the CPU model,
so a report can show a candidate's GFLOP/s as "% of reference". The case shapes are read from
the harness (experiments/linear/harness/bench.c), the single source of truth.

usage: python benchmarks/bench_reference_blas.py [--reps N] [--out FILE]
"""

from __future__ import annotations

import os

# One thread, like the candidates; must be set before NumPy loads its BLAS.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "experiments" / "linear" / "harness" / "bench.c"
MIN_FLOP = 1e6  # below this a Python call's overhead, not arithmetic, is what gets measured
CASE_RE = re.compile(r'\{"(\w+)",\s*(\d+),\s*(\d+),\s*(\d+),\s*([01]),\s*([\d.e+f-]+),\s*([01])\}')


def cases() -> dict[str, tuple[int, int, int, bool]]:
    """name -> (BT, C, OC, has_bias), parsed from the harness's CASES table."""
    found = {m[1]: (int(m[2]), int(m[3]), int(m[4]), m[5] == "1") for m in CASE_RE.finditer(HARNESS.read_text())}
    if not found:
        raise SystemExit(f"{HARNESS}: no CASES entries found (has the table's format changed?)")
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_name() -> str:
    try:
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        blas = deps.get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def operands(bt: int, c: int, oc: int, has_bias: bool) -> tuple:
    rng = np.random.default_rng(0)
    inp = rng.uniform(-1, 1, (bt, c)).astype(np.float32)
    weight = rng.uniform(-1, 1, (oc, c)).astype(np.float32)
    bias = rng.uniform(-1, 1, oc).astype(np.float32) if has_bias else None
    return inp, weight, bias, np.empty((bt, oc), dtype=np.float32)


def time_once(inp, weight, bias, out) -> float:
    t0 = time.perf_counter()
    np.matmul(inp, weight.T, out=out)
    if bias is not None:
        out += bias
    return (time.perf_counter() - t0) * 1e6


def measure(shapes: dict[str, tuple[int, int, int, bool]], reps: int, passes: int = 5) -> dict[str, list[float]]:
    """Per-call times in us, like the harness (operands stay in cache, two warm-ups per case per pass).

    The cases take turns over several passes so a burst of other work on the machine lands on
    a few samples of every case rather than on all samples of one.
    """
    args = {name: operands(*shape) for name, shape in shapes.items()}
    samples: dict[str, list[float]] = {name: [] for name in shapes}
    for _ in range(passes):
        for name in shapes:
            samples[name] += [time_once(*args[name]) for _ in range(max(reps // passes, 1) + 2)][2:]
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "linear" / "reference.json")
    args = ap.parse_args()
    shapes = cases()
    results = {}
    tiny = {n for n, (bt, c, oc, _) in shapes.items() if 2.0 * bt * c * oc < MIN_FLOP}
    for name in sorted(tiny):
        print(f"{name:30s} skipped: under {MIN_FLOP:.0e} FLOP, NumPy's call overhead would be the reference")
    for name, times in measure({n: s for n, s in shapes.items() if n not in tiny}, args.reps).items():
        bt, c, oc, _ = shapes[name]
        flop = 2.0 * bt * c * oc
        median, best = statistics.median(times), min(times)
        results[name] = {
            "shape": f"{bt}x{c}x{oc}",
            "median_us": round(median, 3),
            "gflops": round(flop / median / 1e3, 3),  # same definition as the harness's "gflops"
            "best_gflops": round(flop / best / 1e3, 3),
        }
        print(f"{name:30s} {results[name]['shape']:>14s} {median:10.1f} us {results[name]['gflops']:8.2f} GFLOP/s"
              f" (best {results[name]['best_gflops']:.2f})")
    doc = {
        "what": "NumPy matmul (inp @ weight.T + bias), float32, one BLAS thread; gflops from the median call",
        "cpu": cpu_model(),
        "numpy": np.__version__,
        "blas": blas_name(),
        "threads": 1,
        "reps": args.reps,
        "load_avg_1min": round(os.getloadavg()[0], 2),  # other work on the machine inflates the medians
        "measured_at": time.strftime("%Y-%m-%d"),
        "cases": results,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
