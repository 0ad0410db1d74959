"""What the C supervisor/worker split costs per timed call.

Every timed sample is: SIGCONT to the stopped worker, the worker runs a batch of `batch` calls and
stops itself, the supervisor sees the stop; the sample is the worker's CPU time in that window (the
window's wall time is printed beside it). The fixed part (the handshake) is measured by the
supervisor itself before any target code runs (null batches) and printed as `handshake_us` in every
result line. This benchmark shows it two ways:

1. an empty-ish target (writes one float) at batch 1, 16 and 256: the per-call time is the handshake
   spread over the batch, plus the worker's own loop;
2. the shipped linear and attention harnesses, on their smallest and largest cases, with the baseline
   and the known-faster fixture: the per-call time, the batch and the handshake's share of a sample.

usage: python benchmarks/bench_harness_overhead.py [--cpu K] [--reps N]

Builds with gcc in a temp dir and runs the supervisors directly (no sandbox), pinned to one core like
the sandbox's timing runs. Not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import tempfile
from pathlib import Path

from looplab import harness

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ROOT / "tests" / "fixtures" / "candidates"

NOOP_HARNESS = r"""
#include <stdlib.h>
#include "looplab.h"
#ifdef LOOPLAB_WORKER
void noop(float* out, int n);
void ll_target(const ll_args* a) { noop(a->p[0], a->n[0]); }
#else
static int setup(ll_case* c, const char* name) {
    ll_buffer(c, "out", LL_F32, 1, LL_OUT, 0);
    ll_int(c, 1);
    ll_batch(c, atoi(name + 1));  /* case "kN": N calls per timed sample */
    return name[0] == 'k';
}
static void inputs(ll_case* c, int set, int call) { (void)c; (void)set; (void)call; }
static int check(ll_case* c, int set, int call) { (void)c; (void)set; (void)call; return 1; }
const ll_harness LL_HARNESS = {.setup = setup, .inputs = inputs, .check = check,
                               .warmup = 1, .budget_us = 1e12, .min_reps = 30, .max_reps = 30};
#endif
"""
NOOP_TARGET = "void noop(float* out, int n) { out[0] = (float)n; }\n"

# (experiment, cases: the smallest and largest search cases, and the smallest holdout case)
SHIPPED = {
    "linear": ["gpt2_attn_proj_bt1", "gpt2_mlp_fc_bt64", "odd_1x5x3"],
    "attention": ["gpt2_bench_ctx32", "gpt2_bench_ctx256", "gpt2_ctx1"],
}


def build(harness_c: Path, candidate: Path, out: Path, march: bool = True) -> Path:
    inc = harness.placeholders()["looplab_include"]
    flags = "-O2 -march=native -std=c11" if march else "-O2 -std=c11"
    q = shlex.quote
    cmd = (f"gcc {flags} -I{q(inc)} -o {q(str(out))} {q(str(harness_c))} {q(inc)}/supervisor.c -lm -lseccomp && "
           f"gcc {flags} -I{q(inc)} -DLOOPLAB_WORKER -o {q(str(out))}.worker {q(str(harness_c))} {q(inc)}/worker.c "
           f"{q(str(candidate))} -lm -lseccomp")
    subprocess.run(cmd, shell=True, check=True)
    return out


def run(binary: Path, cases: list[str], cpu: int | None, reps: int | None) -> list[dict]:
    extra = ["--max-reps", str(reps)] if reps else []
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.run([str(binary), *extra, *cases], capture_output=True, text=True, timeout=600,
                          preexec_fn=pin, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def row(label: str, r: dict) -> str:
    if not r["ok"]:
        return f"{label:<44} FAILED: {r['error']}"
    per_call = statistics.median(r["samples_us"])
    share = r["handshake_us"] / (per_call * r["batch"]) if per_call > 0 else float("nan")
    return (f"{label:<44} {per_call:>11.3f} {r['wall_us']:>11.3f} {r['batch']:>6} {r['handshake_us']:>10.2f} "
            f"{share:>9.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", type=int, default=0, help="pin to this core (-1: no pinning)")
    ap.add_argument("--reps", type=int, default=None, help="cap the timed samples per case (--max-reps)")
    args = ap.parse_args()
    cpu = None if args.cpu < 0 else args.cpu
    print(f"{'target / case':<44} {'us/call':>11} {'wall/call':>11} {'batch':>6} {'handshake':>10} {'of sample':>9}")
    with tempfile.TemporaryDirectory(prefix="looplab-overhead-") as tmp:
        d = Path(tmp)
        (d / "noop_harness.c").write_text(NOOP_HARNESS)
        (d / "noop.c").write_text(NOOP_TARGET)
        noop = build(d / "noop_harness.c", d / "noop.c", d / "noop")
        for r in run(noop, ["k1", "k16", "k256"], cpu, None):
            print(row(f"empty-ish target, {r['case'][1:]} per sample", r))
        for name, cases in SHIPPED.items():
            exp = ROOT / "experiments" / name
            for label, cand in (("baseline", exp / "naive.c"), ("faster", CANDIDATES / name / "faster.c")):
                binary = build(exp / "harness" / "bench.c", cand, d / f"{name}_{label}")
                for r in run(binary, cases, cpu, args.reps):
                    print(row(f"{name} {label} {r['case']}", r))


if __name__ == "__main__":
    main()
