"""Acceptance benchmark: how often identical code is accepted (A/A), how often a faster one is found.

Runs on a private copy of the matmul test fixture at looplab's default decision settings
(rounds=3, max_rounds=9, confidence 0.95, min_gain 1%), through the judge's own timing and
decision code, with real gcc builds in the real sandbox:

    python benchmarks/bench_acceptance.py [--trials 100] [--faster-trials 20] [--json]

Not a test: the figures depend on the machine and its load; they go in the closing note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from looplab.acceptance import Incumbent
from looplab.acceptance.calibrate import calibrate
from looplab.acceptance.choose import rule_for
from looplab.acceptance.judge import confirmed_session
from looplab.acceptance.stats import Status
from looplab.config import load_experiment
from looplab.evaluation.evaluator import Evaluator

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "matmul"

# ikj loop order over 8-wide vectors: several times faster than the naive ijk baseline.
FASTER = """typedef float v8 __attribute__((vector_size(32), aligned(4)));
void matmul(float* restrict c, const float* restrict a, const float* restrict b, int n) {
    for (int i = 0; i < n; i++) {
        float* ci = c + (long)i * n;
        for (int j = 0; j < n; j++) ci[j] = 0.0f;
        for (int k = 0; k < n; k++) {
            const float aik = a[(long)i * n + k];
            const float* bk = b + (long)k * n;
            int j = 0;
            for (; j + 8 <= n; j += 8) *(v8*)(ci + j) += aik * *(const v8*)(bk + j);
            for (; j < n; j++) ci[j] += aik * bk[j];
        }
    }
}
"""


def default_settings_copy(dest: Path) -> Path:
    """The fixture with [objective] at looplab's defaults."""
    exp = dest / "matmul"
    shutil.copytree(FIXTURE, exp, ignore=shutil.ignore_patterns(".looplab", "runs", "winners"))
    toml = (exp / "experiment.toml").read_text()
    toml = toml.replace("{binary} --seed {seed} {cases}", "{binary} --seed {seed} --nonce {nonce} {cases}")
    objective = "[objective]\ndirection = \"minimize\"\nunit = \"us\"\nmin_gain = 0.01\nconfidence = 0.95\nrounds = 3\nmax_rounds = 9\n"
    toml = re.sub(r"\[objective\][^\[]*", objective + "\n", toml)
    (exp / "experiment.toml").write_text(toml)
    return exp


def upper_bound(k: int, n: int) -> float:
    """One-sided 95% upper bound on a rate seen k times in n trials (Clopper-Pearson, by bisection)."""
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):
        p = (lo + hi) / 2
        tail = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
        lo, hi = (p, hi) if tail > 0.05 else (lo, p)
    return hi


async def main(trials: int, faster_trials: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="looplab-bench-"))
    os.chmod(tmp, 0o755)
    try:
        exp = load_experiment(default_settings_copy(tmp))
        evaluator = Evaluator(exp)
        start = time.monotonic()
        aa = await calibrate(exp, evaluator, trials=trials)
        aa_s = time.monotonic() - start
        rule = rule_for(exp, evaluator)
        found, speedups, rounds = 0, [], []
        start = time.monotonic()
        for _ in range(faster_trials):
            t = await confirmed_session(rule, FASTER, Incumbent(exp.baseline_source), exp.search_cases)
            if t.failure is not None:
                raise SystemExit(f"the faster candidate failed: {t.failure.reason}")
            found += t.status == Status.BETTER
            speedups.append(t.estimate)
            rounds.append(t.rounds)
        return {
            "false_accept_rate": aa["false_accept_rate"],
            "false_accepts": aa["false_accepts"],
            "aa_trials": trials,
            "false_accept_upper_95": upper_bound(aa["false_accepts"], trials),
            "aa_mean_rounds": aa["mean_rounds"],
            "noise_sd": aa["noise_sd"],
            "min_detectable_gain": aa["min_detectable_gain"],
            "detection_rate": found / faster_trials if faster_trials else None,
            "faster_trials": faster_trials,
            "faster_median_speedup": statistics.median(speedups) if speedups else None,
            "faster_mean_rounds": statistics.fmean(rounds) if rounds else None,
            "seconds_aa": round(aa_s, 1),
            "seconds_faster": round(time.monotonic() - start, 1),
            "load_average": os.getloadavg()[0],
            "protection": aa["protection"],
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100, help="A/A trials (identical code)")
    ap.add_argument("--faster-trials", type=int, default=20, help="trials of the known-faster candidate")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(main(args.trials, args.faster_trials))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"A/A false acceptance: {result['false_accepts']}/{result['aa_trials']} = "
              f"{result['false_accept_rate']:.1%} (95% upper bound {result['false_accept_upper_95']:.1%}), "
              f"{result['aa_mean_rounds']:.1f} rounds on average")
        print(f"noise: per-round sd {result['noise_sd']:.3f} (log ratio); smallest reliably detectable gain "
              f"{result['min_detectable_gain']:.1%}")
        print(f"known-faster candidate: detected {result['detection_rate']:.0%} of {result['faster_trials']} "
              f"(median x{result['faster_median_speedup']:.2f}, {result['faster_mean_rounds']:.1f} rounds)")
        print(f"took {result['seconds_aa']}s + {result['seconds_faster']}s at load {result['load_average']:.1f}; "
              f"sandbox: {result['protection']}")
