"""SCORES.json / SCORES.md and status --json for a small history recorded through the Store API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from looplab.config import Experiment, load_experiment
from looplab.records import CaseResult, Decision, Evaluation, Outcome, Usage
from looplab.report.scores import render_scores_md, scores_dict, status_dict, write_all, write_scores
from looplab.store import Holdout, Store

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


@pytest.fixture
def exp(tmp_path: Path) -> Experiment:
    shutil.copytree(FIXTURE, tmp_path / "matmul")
    return load_experiment(tmp_path / "matmul")


def _ev(**medians: float) -> Evaluation:
    return Evaluation(ok=True, cases={n: CaseResult(n, True, [m - 1, m, m + 1]) for n, m in medians.items()})


def _winner(s: Store, outcome: Outcome, metric: float, speedup: float, lo: float, hi: float, strategy: str,
            commit: str, ev: Evaluation, best: list[str]) -> int:
    aid = s.begin_attempt(model="openai:gpt-4o-mini")
    s.record_call(attempt_id=aid, model="openai:gpt-4o-mini", kind="propose", usage=Usage(1000, 200, 100, 0.01),
                  latency_s=2.0)
    dec = Decision(outcome=outcome, reason="", speedup=speedup, ci_low=lo, ci_high=hi, best_cases=best)
    s.finish_attempt(aid, outcome=outcome, strategy=strategy, evaluation=ev, decision=dec, metric=metric)
    s.set_commit(aid, commit)
    return aid


@pytest.fixture
def store(exp: Experiment):
    with Store(exp.store_path) as s:
        s.record_baseline(source="seed", metric=200.0, model="",
                          evaluation=_ev(n96=100.0, n128=200.0, n160=400.0, n61=50.0))
        a = s.begin_attempt(model="openai:gpt-4o-mini")
        s.finish_attempt(a, outcome=Outcome.COMPILE_ERROR, reason="error: x")
        _winner(s, Outcome.ACCEPTED, 160.0, 1.25, 1.21, 1.29, "ikj loop order", "abc1234",
                _ev(n96=80.0, n128=160.0, n160=320.0, n61=40.0), ["n96", "n128", "n160"])
        a = s.begin_attempt(model="openai:gpt-4o-mini")
        s.finish_attempt(a, outcome=Outcome.SLOWER, strategy="unroll 4")
        _winner(s, Outcome.SPECIALIST, 170.0, 0.94, 0.9, 0.98, "wide tiles", "bbb2222",
                _ev(n96=90.0, n128=170.0, n160=250.0), ["n160"])
        _winner(s, Outcome.ACCEPTED, 100.0, 1.6, 1.52, 1.68, "blocking | 32x32 tiles", "def5678",
                _ev(n96=50.0, n128=100.0, n160=260.0, n61=25.0), ["n96", "n128"])
        s.begin_attempt(model="openai:gpt-4o-mini")  # still in flight
        yield s


def test_status_dict_exact_shape(store: Store, exp: Experiment) -> None:
    assert status_dict(store, exp) == {
        "experiment": "matmul",
        "description": exp.config.description,
        "attempts": 5,
        "in_flight": 1,
        "loops": [],
        "outcomes": {"accepted": 2, "compile_error": 1, "slower": 1, "specialist": 1},
        "best": {"metric": 100.0, "unit": "us", "speedup": 2.0, "commit": "def5678", "attempt": 5},
        "baseline": {"metric": 200.0},
        "usage": {"prompt_tokens": 3000, "completion_tokens": 600, "cached_tokens": 300, "total_tokens": 3600,
                  "cost_usd": pytest.approx(0.03)},
    }


def test_status_dict_before_anything(exp: Experiment) -> None:
    with Store(exp.store_path) as s:
        st = status_dict(s, exp)
    assert st["best"] == {"metric": None, "unit": "us", "speedup": None, "commit": None, "attempt": None}
    assert st["attempts"] == 0 and st["baseline"] == {"metric": None} and st["usage"]["cost_usd"] == 0.0


def test_scores_files(store: Store, exp: Experiment) -> None:
    data = write_scores(store, exp)
    md = (exp.root / "SCORES.md").read_text()
    assert json.loads((exp.root / "SCORES.json").read_text()) == json.loads(json.dumps(data))
    assert md.startswith("# SCORES — matmul\n")
    assert "- Best: 100 us (attempt #5, commit def5678)" in md
    assert "- Seed baseline: 200 us" in md
    assert "- Speedup vs seed: x2.00" in md
    assert "- Attempts: 5 finished, 1 in flight — accepted 2, compile_error 1, slower 1, specialist 1" in md
    assert "prompt 3,000 · completion 600 · cached 300 · total 3,600" in md
    assert "- Cost: $0.0300" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| 20")]
    assert len(rows) == 4  # seed + three winners
    assert rows[1].endswith("| openai:gpt-4o-mini | 160 | x1.25 | x1.25 [1.21, 1.29] | abc1234 | ikj loop order (accepted) |")
    assert rows[2].endswith("| 170 | x1.18 | x0.94 [0.90, 0.98] | bbb2222 | wide tiles (specialist) |")
    assert rows[3].endswith("| def5678 | blocking \\| 32x32 tiles (accepted) |")
    assert [(c["case"], c["kind"], c["best_median"], c["attempt"]) for c in data["cases"]] == [
        ("n96", "search", 50.0, 5), ("n128", "search", 100.0, 5), ("n160", "search", 250.0, 4),
        ("n61", "holdout", 25.0, 5)]
    assert "| n160 | search | 250 | 400 | x1.60 | #4 | bbb2222 |" in md
    assert "| n61 | holdout | 25 | 50 | x2.00 | #5 | def5678 |" in md


def test_unknown_cost_shows_unknown(store: Store, exp: Experiment) -> None:
    store.record_call(attempt_id=None, model="local:llama", kind="propose", usage=Usage(5, 5, 0, None),
                      latency_s=1.0)
    data = write_scores(store, exp)
    assert data["usage"]["cost_usd"] is None
    assert "- Cost: unknown" in (exp.root / "SCORES.md").read_text()
    assert status_dict(store, exp)["usage"]["cost_usd"] is None


def test_maximize_direction_inverts_speedups(store: Store, exp: Experiment) -> None:
    exp.config.objective.direction = "maximize"
    data = scores_dict(store, exp)
    assert data["best"]["speedup"] == pytest.approx(0.5)
    assert data["cases"][0]["best_median"] == 100.0 and data["cases"][0]["attempt"] == 0


def test_no_holdout_rows_without_holdout_data(exp: Experiment) -> None:
    with Store(exp.store_path) as s:
        s.record_baseline(source="seed", metric=10.0, evaluation=_ev(n96=10.0))
        md = render_scores_md(scores_dict(s, exp))
    assert "| n96 | search | 10 |" in md and "| holdout |" not in md
    assert "| n128 | search | — |" in md  # configured but never measured


def test_write_all_regenerates_both(store: Store, exp: Experiment) -> None:
    for name in ("SCORES.md", "MEMORY.md"):
        (exp.root / name).write_text("stale")
    write_all(store, exp)
    assert (exp.root / "SCORES.md").read_text().startswith("# SCORES")
    assert (exp.root / "MEMORY.md").read_text().startswith("# Memory")
    assert (exp.root / "MEMORY.json").is_file() and (exp.root / "SCORES.json").is_file()


def test_holdout_results_kept_apart_count(exp: Experiment) -> None:
    with Store(exp.store_path) as s:
        s.record_baseline(source="seed", metric=10.0, evaluation=_ev(n96=10.0, n61=8.0))
        a = s.begin_attempt(model="m")
        held = Holdout(ok=True, cases={"n61": CaseResult(case="n61", ok=True, samples=[3.0, 4.0, 5.0])})
        s.finish_attempt(a, outcome=Outcome.ACCEPTED, evaluation=_ev(n96=5.0), metric=5.0, holdout=held)
        cases = {c["case"]: c for c in scores_dict(s, exp)["cases"]}
    assert (cases["n61"]["best_median"], cases["n61"]["attempt"], cases["n61"]["seed_median"]) == (4.0, 1, 8.0)


def _with_reference(exp: Experiment, cases: dict) -> Experiment:
    (exp.root / "reference.json").write_text(json.dumps({"what": "a tuned library", "cases": cases}))
    toml = exp.root / "experiment.toml"
    toml.write_text(toml.read_text() + '\n[reference]\nfile = "reference.json"\nkey = "median_us"\n')
    return load_experiment(exp.root)


def test_percent_of_reference_per_case_and_overall(store: Store, exp: Experiment) -> None:
    exp = _with_reference(exp, {"n96": {"median_us": 25.0}, "n128": {"median_us": 50.0},
                                "n160": {"median_us": 100.0}, "n61": {"median_us": 20.0}})
    data = write_scores(store, exp)
    pct = {c["case"]: c["pct_of_reference"] for c in data["cases"]}
    assert pct == {"n96": 50.0, "n128": 50.0, "n160": 40.0, "n61": 80.0}
    # Incumbent (attempt 5): 50%, 50%, 100/260; the seed: 25%, 25%, 25% — geomeans over search cases.
    assert data["reference"]["incumbent_percent"] == pytest.approx((0.5 * 0.5 * 100 / 260) ** (1 / 3) * 100)
    assert data["reference"]["seed_percent"] == pytest.approx(25.0)
    md = (exp.root / "SCORES.md").read_text()
    assert "- Reference (a tuned library): best at 45.8% of it, seed at 25.0% (geomean over search cases)" in md
    assert "| Case | Kind | Best median (us) | Seed median | vs seed | % of reference | Attempt | Commit |" in md
    assert "| n160 | search | 250 | 400 | x1.60 | 40.0% | #4 | bbb2222 |" in md


def test_reference_missing_a_case_shows_a_dash_and_no_overall(store: Store, exp: Experiment) -> None:
    exp = _with_reference(exp, {"n96": {"median_us": 25.0}})
    data = write_scores(store, exp)
    assert data["reference"]["incumbent_percent"] is None
    assert "| n128 | search | 100 | 200 | x2.00 | — | #5 | def5678 |" in (exp.root / "SCORES.md").read_text()


def test_no_reference_no_column(store: Store, exp: Experiment) -> None:
    data = write_scores(store, exp)
    assert data["reference"] is None and "% of reference" not in (exp.root / "SCORES.md").read_text()


def test_winners_show_the_holdout_gain_and_the_over_10x_flag(exp: Experiment) -> None:
    with Store(exp.store_path) as s:
        s.record_baseline(source="seed", metric=1000.0, evaluation=_ev(n96=1000.0))
        aid = s.begin_attempt(model="m")
        dec = Decision(outcome=Outcome.ACCEPTED, reason="", speedup=12.0, ci_low=11.0, ci_high=13.0, revalidated=True)
        s.finish_attempt(aid, outcome=Outcome.ACCEPTED, strategy="packed panels", evaluation=_ev(n96=83.0),
                         decision=dec, metric=83.0, holdout=Holdout(ok=True, speedup=9.5))
        data = scores_dict(s, exp)
    assert data["winners"][1]["holdout"] == 9.5 and data["winners"][1]["revalidated"] is True
    row = [ln for ln in render_scores_md(data).splitlines() if "packed panels" in ln][0]
    assert row.endswith("| x12.00 [11.00, 13.00]; holdout x9.50 | — | packed panels (accepted) — over 10x: "
                        "re-validated with fresh inputs |")


def test_the_experiments_description_heads_scores_md(exp, store):
    exp.config.description = "Square matrix multiply, float32, one thread"
    text = render_scores_md(scores_dict(store, exp))
    assert text.splitlines()[:3] == ["# SCORES — matmul", "", "Square matrix multiply, float32, one thread"]
