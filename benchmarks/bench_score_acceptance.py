"""Acceptance benchmark for score objectives: A/A false acceptance and detection, real processes.

A score harness (a real Python process in the real sandbox, scores drawn with fresh OS randomness)
is judged by the noisy-score rule and by the deterministic-score rule at looplab's default settings
(confidence 0.95, rounds 3, max_rounds 6; min_gain 0 for a score):

    python benchmarks/bench_score_acceptance.py [--trials 40] [--gain-trials 10] [--json]

noisy: the incumbent against itself (sd 1 on a score of 100), then a +1.5 gain.
deterministic: the incumbent against itself, then +0.5% — one evaluation each.
Not a test: the figures go in the closing note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from looplab.acceptance import Incumbent
from looplab.acceptance.choose import rule_for
from looplab.acceptance.judge import confirmed_session
from looplab.acceptance.stats import Status
from looplab.config import load_experiment
from looplab.evaluation.evaluator import Evaluator

HARNESS = r'''
import ast, json, os, random, sys
spec = ast.literal_eval(open(sys.argv[1]).read())
rng = random.Random(os.urandom(16))
for case in sys.argv[2:]:
    print(json.dumps({"case": case, "ok": True, "score": spec["all"] + rng.gauss(0, spec.get("noise", 0.0))}))
'''


def experiment(root: Path, name: str, noise: str):
    dest = root / name
    dest.mkdir()
    (dest / "harness.py").write_text(HARNESS)
    (dest / "base.py").write_text('{"all": 100.0}\n')
    (dest / "experiment.toml").write_text(f"""
[target]
language = "python"
function = "spec"
baseline = "base.py"
[evaluate]
command = "{sys.executable} {{experiment}}/harness.py {{candidate}} {{cases}}"
[cases]
search = ["a", "b", "c"]
[objective]
kind = "score"
direction = "maximize"
noise = "{noise}"
rounds = 3
max_rounds = 6
""")
    return load_experiment(dest)


async def trials(exp, incumbent: str, candidate: str, n: int) -> tuple[int, float]:
    evaluator = Evaluator(exp)
    rule = rule_for(exp, evaluator)
    first = await evaluator.evaluate(incumbent, exp.search_cases)
    inc = Incumbent(incumbent, dict(first.cases))
    start, hits = time.monotonic(), 0
    for _ in range(n):
        s = await confirmed_session(rule, candidate, inc, exp.search_cases)
        hits += s.failure is None and s.status == Status.BETTER
    return hits, time.monotonic() - start


async def main(n: int, gain_n: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="looplab-bench-"))
    os.chmod(root, 0o755)
    try:
        noisy = experiment(root, "noisy", "noisy")
        exact = experiment(root, "exact", "deterministic")
        base_noisy, base_exact = '{"all": 100.0, "noise": 1.0}', '{"all": 100.0}'
        out = {}
        out["noisy_aa"], out["noisy_aa_s"] = await trials(noisy, base_noisy, base_noisy + " ", n)
        out["noisy_gain"], out["noisy_gain_s"] = await trials(noisy, base_noisy, '{"all": 101.5, "noise": 1.0}', gain_n)
        out["exact_aa"], out["exact_aa_s"] = await trials(exact, base_exact, base_exact + " ", n)
        out["exact_gain"], out["exact_gain_s"] = await trials(exact, base_exact, '{"all": 100.5}', gain_n)
        out.update(trials=n, gain_trials=gain_n, load_average=os.getloadavg()[0])
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--gain-trials", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = asyncio.run(main(args.trials, args.gain_trials))
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"noisy score: identical code accepted {r['noisy_aa']}/{r['trials']} ({r['noisy_aa_s']:.0f}s); "
              f"+1.5 sd found {r['noisy_gain']}/{r['gain_trials']} ({r['noisy_gain_s']:.0f}s)")
        print(f"deterministic score: identical code accepted {r['exact_aa']}/{r['trials']} ({r['exact_aa_s']:.0f}s); "
              f"+0.5% found {r['exact_gain']}/{r['gain_trials']} ({r['exact_gain_s']:.0f}s)")
        print(f"load {r['load_average']:.1f}")
