"""The model sees what the evaluator saw: a whole run on a score experiment with replayed replies."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from eval_helpers import private_dir
from score_helpers import region, score_experiment


def reply(strategy: str, spec: str) -> dict:
    return {"content": f"Strategy: {strategy}\nTags: test\n\n```python\n{region(spec)}```\n",
            "usage": {"prompt_tokens": 100, "completion_tokens": 20}}


def test_scores_and_the_evaluators_feedback_reach_the_next_prompt() -> None:
    root = private_dir()
    exp = score_experiment(root, marked=True, objective='metrics = ["quality"]')
    replies = root / "replies.jsonl"
    replies.write_text("\n".join(json.dumps(r) for r in [
        reply("lower on purpose", '{"all": 90.0, "say": "too low on a: try 101", "fail": {}}'),
        reply("a bit higher", '{"all": 100.5}'),
        reply("higher still", '{"all": 102.0}'),
    ]) + "\n")
    proc = subprocess.run([sys.executable, "-m", "looplab.cli", "run", str(exp.root), "--model",
                           f"replay:{replies}", "--loop", "3"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LOOPLAB_TIMING_LOCK": str(root / "timing.lock")})
    assert proc.returncode == 0, proc.stderr
    first = (exp.root / "runs" / "0001" / "prompt.md").read_text()
    assert "Measured: a 100 points (quality 10)" in first
    assert "better than the current best (a higher score is better)" in first and "faster" not in first
    second = (exp.root / "runs" / "0002" / "prompt.md").read_text()
    assert "attempt 1 (slower): 90 points vs 100 points: -10 (x0.900) worse" in second
    assert "evaluator said: feedback: too low on a: try 101" in second
    assert "hidden_case_7" not in second
    third = (exp.root / "runs" / "0003" / "prompt.md").read_text()
    assert "Measured: a 100.5 points" in third  # +0.5% on a deterministic score: accepted
    assert "accepted 2, slower 1" in (exp.root / "SCORES.md").read_text()
