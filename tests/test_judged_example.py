"""The shipped judged example, experiments/extract_fields: its messages, its hard checks, and its
evaluator in the sandbox running the built-in model on the prompt file."""

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

from looplab.config import load_experiment
from looplab.evaluation.evaluator import Evaluator
from looplab.filesets import pack

EXP = Path(__file__).resolve().parent.parent / "experiments" / "extract_fields"
sys.path.insert(0, str(EXP / "harness"))
import messages  # noqa: E402
import run  # noqa: E402


def test_the_experiment_loads_as_a_judged_prompt_search() -> None:
    exp = load_experiment(EXP)
    assert exp.config.objective.kind == "judged" and exp.config.target.files == ["prompt.md"]
    assert exp.config.judge.model and (EXP / exp.config.judge.rubric).is_file()
    assert set(exp.search_cases + exp.holdout_cases) == set(messages.CASES)
    task = (EXP / "EXPERIMENT.md").read_text()
    assert not any(name in task for name in exp.holdout_cases)


def test_messages_are_fresh_per_seed_and_the_same_for_both_sides_of_a_round() -> None:
    for case in messages.CASES:
        assert messages.message(case, 11) == messages.message(case, 11)
        assert len({messages.message(case, s) for s in range(30)}) > 3


@pytest.mark.parametrize("reply, error", [
    ("no json here", "no JSON object"),
    ('{"name": "A", "date": null}', "exactly the keys"),
    ('{"name": "A", "date": null, "amount": 1, "extra": 2}', "exactly the keys"),
    ('{"name": "' + "x" * 81 + '", "date": null, "amount": null}', "at most 80"),
    ('{"name": null, "date": null, "amount": -3}', "number >= 0"),
    ('{"name": null, "date": null, "amount": "12"}', "number >= 0"),
    ('{"name": null, "date": 2024, "amount": null}', "string of at most"),
])
def test_hard_checks_refuse_malformed_answers(reply: str, error: str) -> None:
    found, why = run.check(reply)
    assert found is None and error in why


def test_a_well_formed_answer_passes_and_the_message_goes_where_the_prompt_says() -> None:
    found, why = run.check('sure: {"name": "Kofi Mensah", "date": "2024-03-03", "amount": 45.2}')
    assert why == "" and found == {"name": "Kofi Mensah", "date": "2024-03-03", "amount": 45.2}
    assert run.task_input("Read:\n{message}\nAnswer.", "hello") == "Read:\nhello\nAnswer."
    assert run.task_input("Extract.", "hello") == "Extract.\n\nMessage:\nhello"


@pytest.fixture(scope="module")
def copy():
    d = private_dir()
    shutil.copytree(EXP, d / "extract_fields", ignore=shutil.ignore_patterns(".looplab", "runs", "__pycache__"))
    yield load_experiment(d / "extract_fields")
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="the built-in model is not installed")
def test_the_evaluator_runs_the_prompt_in_the_sandbox_on_paired_fresh_messages(copy) -> None:
    evaluator = Evaluator(copy)
    cases = ["refund_request", "numeric_date"]
    first = asyncio.run(evaluator.evaluate(copy.baseline_source, cases, seed=5))
    again = asyncio.run(evaluator.evaluate(copy.baseline_source, cases, seed=5))
    other = asyncio.run(evaluator.evaluate(copy.baseline_source, cases, seed=6))
    assert first.ok, first.reason
    for name in cases:
        out = first.cases[name].metrics["output"]
        assert set(out) == {"name", "date", "amount"}
        assert first.cases[name].metrics["input"] == again.cases[name].metrics["input"] == messages.message(name, 5)
        assert other.cases[name].metrics["input"] != first.cases[name].metrics["input"]


def test_an_empty_prompt_or_a_hosted_task_model_fails_the_hard_checks(copy) -> None:
    evaluator = Evaluator(copy)
    empty = asyncio.run(evaluator.evaluate(pack({"prompt.md": "\n"}), ["refund_request"]))
    assert not empty.ok and "the prompt is empty" in empty.reason
    hosted = subprocess.run([sys.executable, str(EXP / "harness" / "run.py"), "--prompt", str(EXP / "prompt.md"),
                             "--seed", "1", "--task-model", "openai:gpt-4o-mini", "refund_request"],
                            capture_output=True, text=True, timeout=60)
    line = json.loads(hosted.stdout)
    assert line["ok"] is False and "without network" in line["error"]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="the built-in model is not installed")
def test_the_built_in_judge_answers_in_a_readable_shape() -> None:
    from looplab.acceptance.pairwise import PairJudge
    from looplab.models.local import LocalProvider

    provider = LocalProvider(None, n_threads=1)
    judge = PairJudge(provider, (EXP / "RUBRIC.md").read_text(), load_experiment(EXP).config.judge)
    message = messages.message("refund_request", 3)
    good, bad = {"name": "A B", "date": None, "amount": 3}, {"name": "x", "date": "2020-01-01", "amount": None}
    try:
        found = asyncio.run(judge.compare("refund_request", message, good, bad))
    finally:
        provider.close()
    assert judge.tally.calls == 2 and judge.tally.unreadable == 0  # the verdict's grammar holds it to the shape
    assert found.verdict in ("win", "loss", "tie", "flip", "split")
