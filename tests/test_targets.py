"""Targets beyond a C or Python function: a marked region in a file of any language."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab.check import evaluate_file
from looplab.experiment import UserError, load_experiment
from looplab.extract import extract_candidate
from looplab.prompt import PromptContext, render_prompt

SHELL_PROGRAM = """#!/bin/sh
# Prints a number; the harness scores it (closer to 100 is better).
# EVOLVE-BLOCK-START
echo 40
# EVOLVE-BLOCK-END
"""

SHELL_HARNESS = r"""
import json, subprocess, sys
out = subprocess.run(["/bin/sh", sys.argv[1]], capture_output=True, text=True, timeout=10).stdout.strip()
for case in sys.argv[2:]:
    try:
        value = float(out)
    except ValueError:
        print(json.dumps({"case": case, "ok": False, "error": f"printed {out[:40]!r}, not a number"}))
        continue
    print(json.dumps({"case": case, "ok": True, "score": -abs(100 - value)}))
"""


@pytest.fixture
def shell_experiment() -> Path:
    root = private_dir()
    exp = root / "shell"
    exp.mkdir()
    (exp / "prog.sh").write_text(SHELL_PROGRAM)
    (exp / "harness.py").write_text(SHELL_HARNESS)
    (exp / "experiment.toml").write_text("""
[target]
language = "sh"
baseline = "prog.sh"
[evaluate]
command = "python3 {experiment}/harness.py {candidate} {cases}"
[cases]
search = ["closeness"]
[objective]
kind = "score"
direction = "maximize"
""")
    yield exp
    shutil.rmtree(root, ignore_errors=True)


def test_a_region_in_a_shell_script_is_searched(shell_experiment: Path) -> None:
    exp = load_experiment(shell_experiment)
    assert exp.ext == "sh" and exp.language == "sh"
    prompt = render_prompt(exp, PromptContext(incumbent=exp.baseline_source))[1].content
    assert "```sh\n#!/bin/sh" in prompt and "Sh implementation" in prompt
    reply = "Strategy: closer\n\n```sh\necho 99\n```\n"
    candidate = extract_candidate(reply, language="sh", target="", incumbent=exp.baseline_source)
    assert "echo 99" in candidate.source and "# Prints a number" in candidate.source
    better = asyncio.run(evaluate_file(exp, candidate.source))
    assert better["category"] == "accepted" and better["rule"] == "deterministic_score", better
    worse = asyncio.run(evaluate_file(exp, SHELL_PROGRAM.replace("echo 40", "echo 20")))
    assert worse["category"] == "slower" and "worse" in worse["reason"]


def test_a_function_target_needs_c_or_python(shell_experiment: Path) -> None:
    toml = shell_experiment / "experiment.toml"
    toml.write_text(toml.read_text().replace('baseline = "prog.sh"', 'baseline = "prog.sh"\nfunction = "main"'))
    with pytest.raises(UserError, match="a function target needs c or python"):
        load_experiment(shell_experiment)
