"""The judge end to end: real gcc matmul for accept/reject, and a Python 'speed' harness for the logic."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import FAST_MATMUL, matmul_experiment, private_dir, speed_experiment

from looplab.acceptance import Incumbent, Session
from looplab.acceptance.calibrate import calibrate
from looplab.acceptance.judge import Verdict, judge
from looplab.acceptance.timing import TimingRule
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.evaluation.evaluator import Evaluator
from looplab.records import Outcome
from looplab.sandbox.timing_lock import LOCK_ENV


@pytest.fixture(scope="module")
def root() -> Path:
    d = private_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def matmul(root: Path) -> Experiment:
    return matmul_experiment(root)


@pytest.fixture(scope="module")
def speed(root: Path) -> Experiment:
    return speed_experiment(root, rounds=3, max_rounds=3)


def run_judge(exp: Experiment, candidate: str, incumbent: str | None = None,
              best: dict[str, float] | None = None) -> Verdict:
    return asyncio.run(judge(exp, Evaluator(exp), candidate_source=candidate,
                             incumbent_source=exp.baseline_source if incumbent is None else incumbent,
                             best_case_medians=best or {}))


def test_genuinely_faster_matmul_is_accepted(matmul: Experiment) -> None:
    v = run_judge(matmul, FAST_MATMUL)
    d = v.decision
    assert d.outcome == Outcome.ACCEPTED, d.reason
    assert d.ci_low > 1.02 and d.ci_low <= d.speedup <= d.ci_high and d.rounds >= 3
    assert sorted(d.cases) == ["n128", "n160", "n96"] and d.holdout_speedup is not None
    assert d.reason.startswith(f"x{d.speedup:.2f} [") and "faster" in d.reason and "n61" not in d.reason
    assert v.holdout is not None and v.holdout.ok and list(v.holdout.cases) == ["n61"]
    # The evaluation carries every timing round's samples (first of each run dropped as warm-up).
    assert len(v.evaluation.cases["n96"].samples) == 6 * d.rounds


def test_baseline_respelled_is_not_accepted(matmul: Experiment) -> None:
    respelled = matmul.baseline_source.replace("acc", "sum").replace("    ", "  ") + "\n// same loops\n"
    d = run_judge(matmul, respelled).decision
    assert d.outcome == Outcome.SLOWER and d.ci_low <= 1.02, d.reason


def test_clear_gain_is_accepted_with_holdout_speedup(speed: Experiment) -> None:
    d = run_judge(speed, '{"all": 1.5}').decision
    assert d.outcome == Outcome.ACCEPTED and 1.4 < d.speedup < 1.6 and 1.4 < d.holdout_speedup < 1.6
    assert d.rounds >= 6  # two sessions of at least 3 rounds: the first found it, the second confirmed it
    assert "holdout x1.5" in d.reason or "holdout x1.4" in d.reason


@pytest.mark.parametrize("candidate, words", [('{"all": 0.7}', "slower"), ('{"all": 1.0}', "")])
def test_slower_or_equal_is_not_accepted(speed: Experiment, candidate: str, words: str) -> None:
    d = run_judge(speed, candidate).decision
    assert d.outcome == Outcome.SLOWER and words in d.reason and d.speedup is not None
    assert d.holdout_speedup is None


def test_wrong_on_holdout_is_overfit_and_the_name_stays_hidden(speed: Experiment) -> None:
    v = run_judge(speed, '{"all": 1.5, "fail": {"hidden_case_7": "wrong answer"}}')
    assert v.decision.outcome == Outcome.OVERFIT
    assert "hidden holdout case" in v.decision.reason and "hidden_case_7" not in v.decision.reason
    assert v.decision.speedup is not None and v.holdout is not None and not v.holdout.ok


def test_best_on_one_case_is_a_specialist_only_if_it_beats_the_best_known(speed: Experiment) -> None:
    candidate = '{"a": 3.0, "b": 0.5, "c": 0.5}'
    d = run_judge(speed, candidate, best={"a": 900.0}).decision
    assert d.outcome == Outcome.SPECIALIST and d.best_cases == ["a"] and d.reason.startswith("best on a x")
    assert run_judge(speed, candidate, best={"a": 100.0}).decision.outcome == Outcome.SLOWER


def test_over_10x_is_revalidated_and_flagged(speed: Experiment) -> None:
    d = run_judge(speed, '{"all": 20.0}').decision
    assert d.outcome == Outcome.ACCEPTED and "over 10x: re-validated with fresh inputs" in d.reason and d.revalidated


def test_failures_before_timing_and_a_broken_incumbent(speed: Experiment) -> None:
    bad = run_judge(speed, '{"all": 2.0, "fail": {"b": "off by one"}}')
    assert bad.decision.outcome == Outcome.INVALID and bad.decision.reason == "case b: off by one"
    assert run_judge(speed, '{"crash": True}').decision.outcome == Outcome.CRASH
    broken = run_judge(speed, '{"all": 2.0}', incumbent='{"crash": True}').decision
    assert broken.outcome == Outcome.INFRA_ERROR and "incumbent" in broken.reason


def test_no_holdout_cases(root: Path) -> None:
    (root / "noholdout").mkdir()
    exp = speed_experiment(root / "noholdout", holdout=False, rounds=3, max_rounds=3)
    v = run_judge(exp, '{"all": 1.5}')
    assert v.decision.outcome == Outcome.ACCEPTED and v.holdout is None and v.decision.holdout_speedup is None


class CountingEvaluator(Evaluator):
    """A real Evaluator that also counts the runs it starts."""

    calls = 0

    async def evaluate(self, *args, **kwargs):  # type: ignore[override]
        self.calls += 1
        return await super().evaluate(*args, **kwargs)


def test_timing_waits_for_the_machine_wide_lock(speed: Experiment, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock, release = root / "timing.lock", root / "release"
    monkeypatch.setenv(LOCK_ENV, str(lock))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDONLY | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        f"while not os.path.exists({str(release)!r}): time.sleep(0.02)\n")], stdout=subprocess.PIPE, text=True)
    evaluator = CountingEvaluator(speed)
    try:
        assert holder.stdout.readline().strip() == "held"

        async def scenario() -> tuple[int, Session]:
            rule = TimingRule(evaluator, speed.config.objective.model_copy(update={"max_rounds": 3}), "minimize")
            task = asyncio.create_task(rule.session('{"all": 1.5}', Incumbent(speed.baseline_source),
                                                    speed.search_cases))
            await asyncio.sleep(1.0)
            runs_while_held = evaluator.calls  # nothing may be timed while another process holds the lock
            release.touch()
            return runs_while_held, await task

        runs_while_held, timing = asyncio.run(scenario())
        assert runs_while_held == 0 and evaluator.calls == 6 and timing.status == "better"
    finally:
        release.touch()
        holder.wait(timeout=10)


def test_calibrate_reports_the_noise_floor(speed: Experiment) -> None:
    result = asyncio.run(calibrate(speed, Evaluator(speed), trials=3))
    assert result["trials"] == 3 and result["false_accept_rate"] == 0.0 and result["false_accepts"] == 0
    assert result["min_gain"] <= result["min_detectable_gain"] < 0.2  # 1% harness noise: small gains are visible
    assert 0 < result["noise_sd"] < 0.05 and result["mean_rounds"] == 3
    with pytest.raises(UserError, match="does not pass its own evaluation"):
        asyncio.run(calibrate(speed, Evaluator(speed), trials=1, source='{"crash": True}'))


def test_a_win_the_second_session_does_not_see_is_not_accepted(speed: Experiment, monkeypatch) -> None:
    real, sessions = TimingRule.session, []

    async def second_sees_no_gain(self, candidate, incumbent, cases, **kw):
        sessions.append(candidate)
        if len(sessions) == 2:  # the confirming session times the incumbent against itself
            candidate = incumbent.source
        return await real(self, candidate, incumbent, cases, **kw)

    monkeypatch.setattr(TimingRule, "session", second_sees_no_gain)
    d = run_judge(speed, '{"all": 1.5}').decision
    assert len(sessions) == 2 and d.outcome == Outcome.SLOWER
    assert "faster in a first session, not confirmed by a second" in d.reason and d.holdout_speedup is None
