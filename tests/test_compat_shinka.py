"""A ShinkaEvolve-shaped folder (tests/fixtures/compat/shinka_task, written for these tests) runs as its author
meant it to: `python evaluate.py --program_path P --results_dir D` in its own folder, metrics.json and
correct.json read, combined_score the objective, public metrics and text_feedback shown to the model,
private metrics never; the task and settings from run_evo.py, read and never run."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab.compat import run_settings
from looplab.config import load_experiment
from looplab.evaluation.evaluator import Evaluator
from looplab.records import Outcome

FIXTURE = Path(__file__).parent / "fixtures" / "compat" / "shinka_task"


@pytest.fixture
def folder():
    root = private_dir()
    dest = root / "budget"
    shutil.copytree(FIXTURE, dest)
    yield dest
    shutil.rmtree(root, ignore_errors=True)


def program(body: str) -> str:
    source = (FIXTURE / "initial.py").read_text()
    start = source.index("# EVOLVE-BLOCK-START\n") + len("# EVOLVE-BLOCK-START\n")
    return source[:start] + body + source[source.index("# EVOLVE-BLOCK-END"):]


def evaluate(folder: Path, source: str):
    return asyncio.run(Evaluator(load_experiment(folder)).evaluate(source, []))


def test_the_folder_is_recognised_and_run_evo_is_read_not_run(folder):
    exp = load_experiment(folder)
    assert exp.peer is not None and exp.peer.kind == "ShinkaEvolve"
    assert exp.task_text == "Choose values whose sum comes as close to the budget of 20 as possible without going over."
    ev = exp.config.evaluate
    assert (ev.evaluator, ev.evaluator_style, ev.timeout_s) == ("evaluate.py", "shinka", 30)
    assert exp.baseline_path.name == "initial.py" and exp.language == "python"
    settings, lines = run_settings(exp.peer, loop=None, temperature=None, max_tokens=None)
    assert settings == {"loop": 3, "temperature": 0.2, "max_tokens": 2048}
    for name in ("evo_config.patch_types", "evo_config.llm_models", "db_config.num_islands", "db_config.archive_size"):
        assert f"run_evo.py: {name} not honoured (" in "\n".join(lines), name
    assert not any("task_sys_msg not honoured" in line or "time not honoured" in line for line in lines)


def test_metrics_json_and_correct_json_decide(folder):
    base = evaluate(folder, program((FIXTURE / "initial.py").read_text().split("# EVOLVE-BLOCK-START\n")[1]
                                    .split("# EVOLVE-BLOCK-END")[0]))
    assert base.ok and base.cases["score"].samples == [0.85]
    metrics = base.cases["score"].metrics
    assert metrics == {"total": 17, "count": 2, "text_feedback": "chose [8, 9] (sum 17 of 20)", "combined_score": 0.85}
    assert "best_possible" not in json.dumps(metrics)  # a private metric never reaches the case
    assert 'private metrics (not shown to the model): {"best_possible": 20}' in base.log
    better = evaluate(folder, program("def pick(values):\n    return [9, 7, 4]\n"))
    assert better.ok and better.cases["score"].samples == [1.0]
    over = evaluate(folder, program("def pick(values):\n    return values\n"))
    assert over.failure == Outcome.INVALID
    assert over.reason == "case score: Validation failed: the chosen values sum to 39, over the budget of 20"
    assert over.cases["score"].metrics["text_feedback"] == "chose [4, 5, 6, 7, 8, 9] (sum 39 of 20)"


def test_an_evaluate_py_writing_its_own_files(folder):
    (folder / "evaluate.py").write_text(
        "import argparse, json, os\n"
        "p = argparse.ArgumentParser(); p.add_argument('--program_path'); p.add_argument('--results_dir')\n"
        "a = p.parse_args()\n"
        "src = open(a.program_path).read()\n"
        "ok = 'raise' not in src\n"
        "os.makedirs(a.results_dir, exist_ok=True)\n"
        "json.dump({'combined_score': len(src) / 1000, 'public': {'chars': len(src), 'shape': [1, 2]},\n"
        "           'private': {'hidden': 1}, 'text_feedback': ['line one', 'line two']},\n"
        "          open(os.path.join(a.results_dir, 'metrics.json'), 'w'))\n"
        "json.dump({'correct': ok, 'error': None if ok else 'the program raises'},\n"
        "          open(os.path.join(a.results_dir, 'correct.json'), 'w'))\n")
    ok = evaluate(folder, program("def pick(values):\n    return []\n"))
    assert ok.ok and ok.cases["score"].metrics["text_feedback"] == "line one\nline two"
    assert ok.cases["score"].metrics["shape"] == "[1, 2]" and "hidden" not in ok.cases["score"].metrics
    bad = evaluate(folder, program("def pick(values):\n    raise ValueError\n"))
    assert bad.failure == Outcome.INVALID and bad.reason == "case score: the program raises"
    (folder / "evaluate.py").write_text("import sys\nprint('no files written', file=sys.stderr)\nsys.exit(3)\n")
    crash = evaluate(folder, program("def pick(values):\n    return []\n"))
    assert crash.failure == Outcome.CRASH
    assert crash.reason == "case score: evaluate.py wrote no metrics.json (exit code 3): no files written"


def reply(strategy: str, body: str) -> dict:
    return {"content": f"Strategy: {strategy}\nTags: test\n\n```python\n{body}```\n",
            "usage": {"prompt_tokens": 100, "completion_tokens": 20}}


def test_a_scripted_run_accepts_refuses_and_warns(folder):
    replies = folder.parent / "replies.jsonl"
    replies.write_text("\n".join(json.dumps(r) for r in [
        reply("take everything", "def pick(values):\n    return values\n"),
        reply("exact fit", "def pick(values):\n    return [9, 7, 4]\n"),
        reply("nothing", "def pick(values):\n    return []\n"),
    ]) + "\n")
    proc = subprocess.run([sys.executable, "-m", "looplab.cli", "run", str(folder), "--model", f"replay:{replies}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "3 attempts" in out and "run_evo.py: evo_config.patch_types not honoured" in out
    second = (folder / "runs" / "0002" / "prompt.md").read_text()
    assert "Choose values whose sum comes as close to the budget" in second
    assert "attempt 1 (invalid): case score: Validation failed: the chosen values sum to 39" in second
    assert "text_feedback: chose [4, 5, 6, 7, 8, 9]" in second
    assert "best_possible" not in second
    assert json.loads((folder / "runs" / "0002" / "result.json").read_text())["outcome"] == "accepted"
    assert json.loads((folder / "runs" / "0003" / "result.json").read_text())["outcome"] == "slower"
    assert not list(folder.glob("results*"))  # Shinka's results folder is private to the sandbox


def test_experiment_toml_names_a_shinka_evaluator(folder):
    (folder / "experiment.toml").write_text(
        '[target]\nlanguage = "python"\nbaseline = "initial.py"\n'
        '[evaluate]\nevaluator = "evaluate.py"\nevaluator_style = "shinka"\ntimeout_s = 30\n')
    exp = load_experiment(folder)
    assert exp.peer is None
    ev = asyncio.run(Evaluator(exp).evaluate(program("def pick(values):\n    return [9, 7, 4]\n"), []))
    assert ev.ok and ev.cases["score"].samples == [1.0] and ev.cases["score"].metrics["total"] == 20
