""""x over the baseline": one function, and every place that shows it (SCORES, the dashboard, the prompt,
the live panel) says the same for a minimised and a maximised objective, and nothing without a baseline."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from looplab.config import Experiment, load_experiment
from looplab.propose.context import speedup_label
from looplab.records import CaseResult, Decision, Evaluation, Outcome, times_better
from looplab.report.panel import RichProgress
from looplab.report.scores import status_dict
from looplab.store import Store
from looplab.ui.views import build_view, gain

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


def test_times_better_in_both_directions_and_without_two_positive_numbers() -> None:
    assert times_better(200.0, 100.0, "minimize") == 2.0  # half the time: twice as good
    assert times_better(100.0, 200.0, "maximize") == 2.0  # twice the score: twice as good
    assert times_better(100.0, 200.0, "minimize") == 0.5
    assert times_better(200.0, 100.0, "maximize") == 0.5
    for base, value in ((None, 1.0), (1.0, None), (0.0, 1.0), (1.0, 0.0), (-2.0, -1.0)):
        assert times_better(base, value, "minimize") is None and times_better(base, value, "maximize") is None


@pytest.fixture
def exp(tmp_path: Path) -> Experiment:
    shutil.copytree(FIXTURE, tmp_path / "matmul")
    return load_experiment(tmp_path / "matmul")


def _ev(median: float) -> Evaluation:
    return Evaluation(ok=True, cases={"n96": CaseResult("n96", True, [median - 1, median, median + 1])})


def _shown(store: Store, exp: Experiment) -> dict[str, object]:
    """The gain of the incumbent over the baseline as each surface computes it."""
    incumbent = store.incumbent()
    panel = RichProgress(Console(file=io.StringIO()), experiment=exp, auto_refresh=False)
    panel._read_store()
    view = build_view(store, exp)
    return {"scores": status_dict(store, exp)["best"]["speedup"],
            "dashboard": gain(view, incumbent.metric if incumbent else None),
            "prompt": speedup_label(store, exp, incumbent) if incumbent else "",
            "panel": panel._incumbent[1] if panel._incumbent else None}


@pytest.mark.parametrize(("direction", "expected"), [("minimize", 2.0), ("maximize", 0.5)])
def test_every_surface_shows_the_same_gain(exp: Experiment, direction: str, expected: float) -> None:
    exp.config.objective.direction = direction
    with Store(exp.store_path) as s:
        s.record_baseline(source="seed", metric=200.0, model="", evaluation=_ev(200.0))
        aid = s.begin_attempt(model="m")
        s.finish_attempt(aid, outcome=Outcome.ACCEPTED, evaluation=_ev(100.0), metric=100.0,
                         decision=Decision(outcome=Outcome.ACCEPTED, reason="", speedup=2.0, ci_low=1.9, ci_high=2.1))
        shown = _shown(s, exp)
    assert shown["scores"] == pytest.approx(expected)
    assert shown["dashboard"] == pytest.approx(expected)
    assert shown["panel"] == pytest.approx(expected)
    assert shown["prompt"] == f"x{expected:.2f}"


def test_without_a_measured_baseline_no_surface_shows_a_gain(exp: Experiment) -> None:
    with Store(exp.store_path) as s:
        s.record_baseline(source="seed", metric=None, model="", evaluation=_ev(200.0))  # judged: no value
        aid = s.begin_attempt(model="m")
        s.finish_attempt(aid, outcome=Outcome.ACCEPTED, evaluation=_ev(100.0), metric=100.0,
                         decision=Decision(outcome=Outcome.ACCEPTED, reason=""))
        shown = _shown(s, exp)
    assert shown == {"scores": None, "dashboard": None, "prompt": "", "panel": None}
