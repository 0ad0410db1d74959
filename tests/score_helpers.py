"""A score experiment for the acceptance tests: the candidate is a dict the harness turns into scores.

{"all": 100.0}                  every case scores 100 (deterministic)
{"all": 100.0, "noise": 1.0}    Gaussian noise of sd 1 on every evaluation (fresh OS randomness)
{"a": 101.0, ...}               per case; "fail": {case: message} fails that case
{"all": 99.0, "say": "text"}    the harness also prints "feedback": "text" (what the model should see)

The baseline can be a marked region (`# EVOLVE-BLOCK-START` ... `END` around the dict), so whole runs
with replayed replies work.
"""

from __future__ import annotations

import sys
from pathlib import Path

from looplab.config import Experiment, load_experiment

_HARNESS = r'''
import ast, json, os, random, sys
spec = ast.literal_eval(open(sys.argv[1]).read())
rng = random.Random(os.urandom(16))
for case in sys.argv[2:]:
    if case in spec.get("fail", {}):
        print(json.dumps({"case": case, "ok": False, "error": spec["fail"][case]}))
        continue
    value = spec.get(case, spec.get("all", 0.0)) + rng.gauss(0, spec.get("noise", 0.0))
    line = {"case": case, "ok": True, "score": value, "quality": value / 10}
    if "say" in spec:
        line["feedback"] = spec["say"]
    print(json.dumps(line))
'''


def region(spec: str) -> str:
    return f"# A scoring spec.\n# EVOLVE-BLOCK-START\n{spec}\n# EVOLVE-BLOCK-END\n"


def score_experiment(root: Path, *, baseline: str = '{"all": 100.0}', direction: str = "maximize",
                     objective: str = "", holdout: bool = True, name: str = "score",
                     marked: bool = False) -> Experiment:
    dest = root / name
    dest.mkdir()
    (dest / "harness.py").write_text(_HARNESS)
    (dest / "base.py").write_text(region(baseline) if marked else baseline + "\n")
    (dest / "experiment.toml").write_text(f"""
[target]
language = "python"
{'' if marked else 'function = "spec"'}
baseline = "base.py"
[evaluate]
command = "{sys.executable} {{experiment}}/harness.py {{candidate}} {{cases}}"
timeout_s = 30
[cases]
search = ["a", "b", "c"]
holdout = {'["hidden_case_7"]' if holdout else '[]'}
[objective]
kind = "score"
unit = "points"
direction = "{direction}"
{objective}
""")
    return load_experiment(dest)
