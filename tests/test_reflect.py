"""--reflect-every: a real model process reads the latest attempts and its bullets become the memory's
insights; the ask names the experiment's own goal and never a holdout case."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from looplab.config import Direction, Experiment, ObjectiveKind, load_experiment
from looplab.models.command import CommandProvider
from looplab.propose.reflect import reflect
from looplab.records import CaseResult, Evaluation, Outcome
from looplab.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


@pytest.fixture
def exp(tmp_path: Path) -> Experiment:
    shutil.copytree(FIXTURE, tmp_path / "matmul")
    return load_experiment(tmp_path / "matmul")


def _record(exp: Experiment, holdout: str) -> None:
    cases = {"n96": CaseResult("n96", True, [100.0])}
    with Store(exp.store_path) as s:
        s.record_baseline(source="seed", metric=100.0, evaluation=Evaluation(ok=True, cases=cases))
        a = s.begin_attempt(model="m")
        s.finish_attempt(a, outcome=Outcome.INVALID, reason=f"wrong result on {holdout}", strategy="tile 8x8")


def _model(tmp_path: Path) -> tuple[CommandProvider, Path]:
    """A model process: keeps the prompt it was given, answers with two bullets."""
    asked = tmp_path / "asked.txt"
    return CommandProvider(f"cat > {asked}; printf -- '- tiling pays off\\n- check bounds\\n'"), asked


def _reflect(exp: Experiment, model: CommandProvider) -> bool:
    with Store(exp.store_path) as s:
        return asyncio.run(reflect(exp, s, model, timeout_s=30))


def test_reflection_stores_the_models_insights_and_records_the_call(exp: Experiment, tmp_path: Path) -> None:
    _record(exp, "n61")
    model, asked = _model(tmp_path)
    assert _reflect(exp, model) is True
    with Store(exp.store_path) as s:
        assert s.get_meta("insights") == "- tiling pays off\n- check bounds"
        assert [c["kind"] for c in s.calls()] == ["reflect"]
    text = asked.read_text()
    assert "#1 invalid: tile 8x8" in text and "a faster implementation" in text


def test_the_ask_follows_the_objective_and_hides_holdout_names(exp: Experiment, tmp_path: Path) -> None:
    exp.config.objective.kind = ObjectiveKind.SCORE
    exp.config.objective.metric, exp.config.objective.direction = "accuracy", Direction.MAXIMIZE
    holdout = exp.holdout_cases[0]
    _record(exp, holdout)
    model, asked = _model(tmp_path)
    _reflect(exp, model)
    text = asked.read_text()
    assert "a better implementation (a higher `accuracy` is better)" in text and "faster" not in text
    assert holdout not in text and "a hidden holdout case" in text


def test_a_replay_model_is_never_asked_to_reflect(exp: Experiment, tmp_path: Path) -> None:
    _record(exp, "n61")
    replies = tmp_path / "r.jsonl"
    replies.write_text("")
    from looplab.models import provider_from_spec

    with Store(exp.store_path) as s:
        assert asyncio.run(reflect(exp, s, provider_from_spec(f"replay:{replies}"), timeout_s=5)) is False
        assert s.get_meta("insights") is None
