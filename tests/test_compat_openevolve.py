"""An OpenEvolve-shaped folder (tests/fixtures/compat/openevolve_cascade, written for these tests) runs as its
author meant it to: config.yaml's task, timeout and three-stage cascade, an evaluator importing
EvaluationResult and returning artifacts, a data file and a sibling script opened by relative path, and
`import os` outside the EVOLVE-BLOCK that no candidate is blamed for."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab.compat import run_settings
from looplab.config import load_experiment
from looplab.errors import UserError
from looplab.evaluation.evaluator import Evaluator
from looplab.records import Outcome
from looplab.screen.policy import screen

FIXTURE = Path(__file__).parent / "fixtures" / "compat" / "openevolve_cascade"


@pytest.fixture
def folder():
    root = private_dir()
    dest = root / "curve"
    shutil.copytree(FIXTURE, dest)
    yield dest
    shutil.rmtree(root, ignore_errors=True)


def program(body: str) -> str:
    """The starting program with body in place of the EVOLVE-BLOCK's contents."""
    source = (FIXTURE / "initial_program.py").read_text()
    start = source.index("# EVOLVE-BLOCK-START\n") + len("# EVOLVE-BLOCK-START\n")
    return source[:start] + body + source[source.index("# EVOLVE-BLOCK-END"):]


def evaluate(folder: Path, source: str):
    return asyncio.run(Evaluator(load_experiment(folder)).evaluate(source, []))


def test_config_yaml_is_read_as_openevolve_reads_it(folder):
    exp = load_experiment(folder)
    assert exp.task_text.startswith("Make `predict(x)` return the hidden curve's value")
    assert "x * x + 1" not in exp.task_text  # README.md (which gives the answer away) is not the task
    ev = exp.config.evaluate
    assert (ev.evaluator, ev.evaluator_style, ev.timeout_s, ev.cascade) == ("evaluator.py", "openevolve", 20, [0.3, 0.45])
    assert exp.config.objective.direction == "maximize" and exp.search_cases == ["score"]
    settings, lines = run_settings(exp.peer, loop=None, temperature=None, max_tokens=None)
    assert settings == {"loop": 3, "temperature": 0.3, "max_tokens": 2048}
    assert "evaluator.timeout 20 s" in lines[0] and "cascade thresholds [0.3, 0.45]" in lines[0]
    named = [line.split(": ")[1].split(" not honoured")[0] for line in lines if " not honoured (" in line]
    assert named == ["log_level", "llm.primary_model", "prompt.num_top_programs", "database.population_size",
                     "evaluator.parallel_evaluations"]  # every other setting of config.yaml is honoured
    _, flagged = run_settings(exp.peer, loop=7, temperature=None, max_tokens=None)
    assert "config.yaml: max_iterations 3 overridden by --loop 7" in flagged


def test_cascade_stages_gate_each_other_and_artifacts_reach_the_case(folder):
    base = evaluate(folder, program("def predict(x):\n    return x * x\n"))
    assert base.ok and base.cases["score"].samples == [0.5]
    metrics = base.cases["score"].metrics
    assert metrics["points"] == 6  # stage 2 read targets.txt by relative path
    assert metrics["check"] == 1.0  # stage 3 ran the sibling script check.py
    assert metrics["feedback"] == "furthest off at x=0: got 0, expected 1"  # an artifact, as text
    better = evaluate(folder, program("def predict(x):\n    return x * x + 1\n"))
    assert better.ok and better.cases["score"].samples == [1.0]
    stage1 = evaluate(folder, program("def predict(x):\n    return 0\n"))
    m = stage1.cases["score"].metrics
    assert stage1.ok and "points" not in m and "check" not in m
    assert m["cascade"].startswith("stopped after stage 1: combined_score 0.222222 is below the stage-2 threshold 0.3")
    stage2 = evaluate(folder, program("def predict(x):\n    return x * x + 1 if x < 3 else 0\n"))
    m = stage2.cases["score"].metrics
    assert stage2.ok and m["points"] == 6 and "check" not in m and m["cascade"].startswith("stopped after stage 2")


def test_the_evaluators_own_error_and_artifacts_make_a_candidate_invalid(folder):
    broken = evaluate(folder, program("def predict(x):\n    return 'a'\n"))
    assert broken.failure == Outcome.INVALID
    assert broken.reason == "case score: predict(1) returned 'a', not a number"
    assert broken.cases["score"].metrics["suggestion"] == "predict must return a number for every x"
    raising = evaluate(folder, program("def predict(x):\n    return 1 / (x - x)\n"))
    assert raising.failure == Outcome.INVALID and "ZeroDivisionError: division by zero" in raising.reason
    trace = raising.cases["score"].metrics["traceback"]
    assert "in predict" in trace and "evaluator.py" not in trace  # the candidate's frames only


def test_evaluator_timeout_is_per_stage(folder):
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("timeout: 20", "timeout: 2"))
    slow = evaluate(folder, program("import time\n\n\ndef predict(x):\n    time.sleep(30)\n    return x\n"))
    assert slow.failure == Outcome.TIMEOUT and "stage 1 timed out after 2s (evaluator.timeout)" in slow.reason
    assert slow.wall_s < 20


def test_a_call_stuck_in_c_code_is_ended_at_its_timeout_not_the_sandboxes(folder):
    # sum() over a huge range never returns to the interpreter, so the timer's handler never runs: the
    # runner's watchdog ends it a second later, well before the sandbox's own deadline (timeout + 30 s).
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("timeout: 20", "timeout: 2"))
    stuck = evaluate(folder, program("def predict(x):\n    return sum(range(10 ** 15)) * 0 + x\n"))
    assert stuck.failure == Outcome.TIMEOUT and "ran past evaluator.timeout (2s)" in stuck.reason, stuck.log
    assert stuck.wall_s < 20
    assert "in predict" in stuck.log  # where it was stuck, for the model's next try
    honest = evaluate(folder, program("def predict(x):\n    return x * x + 1\n"))
    assert honest.ok and honest.cases["score"].samples == [1.0]


def test_evaluation_result_stand_in_is_not_a_looplab_package():
    spec = importlib.util.find_spec("openevolve")
    assert spec is None or "looplab" not in str(spec.origin)  # a real install is never shadowed


def test_only_the_models_change_is_screened():
    exp_policy = load_experiment(FIXTURE).config.screen
    base = (FIXTURE / "initial_program.py").read_text()
    assert "import os" in base.split("# EVOLVE-BLOCK-START")[0]
    assert screen(program("def predict(x):\n    return x + 1\n"), language="python", policy=exp_policy,
                  baseline=base) is None
    added = screen(program("import os\n\n\ndef predict(x):\n    return len(os.listdir())\n"), language="python",
                   policy=exp_policy, baseline=base)
    assert added is not None and added.rule == "import not allowed"
    outside = screen(base.replace("return os.getcwd()", "return 1"), language="python", policy=exp_policy,
                     baseline=base)
    assert outside is not None and outside.rule == "evolve-block"


def test_what_the_starting_blocks_author_wrote_is_not_held_against_a_candidate():
    base = "# EVOLVE-BLOCK-START\nimport sys\n\nfor line in sys.stdin:\n    print(line)\n# EVOLVE-BLOCK-END\n"
    kept = base.replace("print(line)", "print(line.upper())")
    policy = load_experiment(FIXTURE).config.screen
    assert screen(kept, language="python", policy=policy, baseline=base) is None
    more = kept.replace("import sys\n", "import sys\nimport subprocess\n")
    assert screen(more, language="python", policy=policy, baseline=base).rule == "import not allowed"


def test_a_malformed_config_yaml_is_one_line(folder):
    (folder / "config.yaml").write_text("evaluator: [unclosed\n")
    with pytest.raises(UserError, match=r"config.yaml: not valid YAML at line \d+ \(fix: correct the syntax\)"):
        load_experiment(folder)


def reply(strategy: str, body: str) -> dict:
    return {"content": f"Strategy: {strategy}\nTags: test\n\n```python\n{body}```\n",
            "usage": {"prompt_tokens": 100, "completion_tokens": 20}}


def test_a_scripted_run_accepts_refuses_and_warns(folder):
    replies = folder.parent / "replies.jsonl"
    replies.write_text("\n".join(json.dumps(r) for r in [
        reply("return strings", "def predict(x):\n    return 'a'\n"),
        reply("add the constant", "def predict(x):\n    return x * x + 1\n"),
        reply("constant zero", "def predict(x):\n    return 0\n"),
    ]) + "\n")
    proc = subprocess.run([sys.executable, "-m", "looplab.cli", "run", str(folder), "--model", f"replay:{replies}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "3 attempts" in out  # max_iterations is the default --loop
    for name in ("log_level", "llm.primary_model", "prompt.num_top_programs", "database.population_size",
                 "evaluator.parallel_evaluations"):
        assert f"config.yaml: {name} not honoured" in out, name
    first = (folder / "runs" / "0001" / "prompt.md").read_text()
    assert "Make `predict(x)` return the hidden curve's value" in first and "x * x + 1" not in first
    second = (folder / "runs" / "0002" / "prompt.md").read_text()
    assert "attempt 1 (invalid): case score: predict(1) returned 'a', not a number" in second
    assert "suggestion: predict must return a number for every x" in second  # an artifact reached the model
    result = json.loads((folder / "runs" / "0002" / "result.json").read_text())
    assert result["outcome"] == "accepted", result
    third = json.loads((folder / "runs" / "0003" / "result.json").read_text())
    assert third["outcome"] == "slower" and "stopped after stage 1" in third["cases"]["score"]["metrics"]["cascade"]


def test_a_program_without_markers_is_one_line(folder):
    source = (folder / "initial_program.py").read_text()
    (folder / "initial_program.py").write_text(source.replace("# EVOLVE-BLOCK-START\n", "").replace("# EVOLVE-BLOCK-END\n", ""))
    with pytest.raises(UserError, match=r"initial_program.py: no EVOLVE-BLOCK-START/EVOLVE-BLOCK-END markers \(fix: "):
        load_experiment(folder)


def test_experiment_toml_names_a_cascade_itself(folder):
    (folder / "experiment.toml").write_text(
        '[target]\nlanguage = "python"\nbaseline = "initial_program.py"\n'
        '[evaluate]\nevaluator = "evaluator.py"\ntimeout_s = 20\ncascade = [0.9]\n')
    exp = load_experiment(folder)
    assert exp.peer is None and exp.config.evaluate.cascade == [0.9]
    base = asyncio.run(Evaluator(exp).evaluate(exp.baseline_source, []))
    assert base.ok and base.cases["score"].metrics["cascade"].startswith("stopped after stage 1: combined_score 0.5")
