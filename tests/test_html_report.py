"""report.html from a recorded matmul search: real SQLite store, runs/ trail, content checked figure by figure.

record_search() is also the data of tests/test_ui_browser.py.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from looplab.config import load_experiment
from looplab.records import CaseComparison, CaseResult, Decision, Evaluation, Outcome, Usage
from looplab.report import runs
from looplab.report.html import write_html_report
from looplab.store import Holdout, ReadOnlyStoreError, Store, open_readonly
from looplab.store.faults import StoreError
from looplab.store.sqlite import ReadOnlySqliteBackend

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"
NAIVE = (FIXTURE / "naive.c").read_text()
IKJ = """void matmul(float* c, const float* a, const float* b, int n) {
    for (int i = 0; i < n * n; i++) c[i] = 0.0f;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            const float aik = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
}
"""
UNROLLED = IKJ.replace("for (int j = 0; j < n; j++)", "#pragma GCC unroll 4\n            for (int j = 0; j < n; j++)")
EVIL = "<img src=x onerror=alert(1)>"  # a model can write anything; the pages must show it as text
BASE_US = {"n96": 900.0, "n128": 2100.0, "n160": 4200.0, "n61": 260.0}


def _cases(us: dict[str, float], bad: dict[str, str] | None = None) -> dict[str, CaseResult]:
    bad = bad or {}
    return {n: CaseResult(n, ok=n not in bad, samples=[] if n in bad else [m * 1.01, m, m * 0.99], error=bad.get(n))
            for n, m in us.items()}


def _geomean(us: dict[str, float]) -> float:
    search = [us[n] for n in ("n96", "n128", "n160")]
    return math.exp(sum(math.log(v) for v in search) / len(search))


def add_attempt(exp_dir: Path, outcome: Outcome, *, reason: str, strategy: str = "", source: str | None = None,
                us: dict[str, float] | None = None, speedup: float | None = None, tokens: tuple[int, int] = (900, 200),
                bad: dict[str, str] | None = None, holdout_us: dict[str, float] | None = None,
                commit: str | None = None) -> int:
    """Record one finished attempt as the loop would: store row, model call, runs/ trail."""
    exp = load_experiment(exp_dir)
    with Store(exp.store_path) as store:
        attempt_id = store.begin_attempt(model="replay:replies.jsonl")
        store.record_call(attempt_id=attempt_id, model="replay:replies.jsonl", kind="propose",
                          usage=Usage(tokens[0], tokens[1], tokens[0] // 4, 0.0), latency_s=0.4)
        evaluation = None
        if us is not None or bad:
            cases = _cases(us or {}, bad)
            failure = Outcome.INVALID if bad else None
            evaluation = Evaluation(ok=not bad, cases=cases, failure=failure, reason=reason if bad else "",
                                    log="gcc -O2 ... ok", seed=attempt_id, wall_s=1.2)
        decision = None
        if speedup is not None:
            comps = {n: CaseComparison(n, speedup * f, speedup * f - 0.1, speedup * f + 0.1, 1.0, 1.0, 3)
                     for n, f in (("n96", 0.98), ("n128", 1.0), ("n160", 1.02))}
            decision = Decision(outcome, reason, speedup=speedup, ci_low=speedup - 0.2, ci_high=speedup + 0.2,
                                cases=comps, best_cases=["n160"] if outcome is Outcome.SPECIALIST else [], rounds=3)
        details: dict = {"next_ideas": ["blocking for cache"]} if outcome is Outcome.ACCEPTED else {}
        held = {n: CaseResult(case=n, ok=True, samples=[m]) for n, m in (holdout_us or {}).items()}
        holdout = Holdout(ok=True, cases=held) if holdout_us else None
        store.finish_attempt(attempt_id, outcome=outcome, reason=reason, source=source,
                             source_hash=hashlib.sha1(source.encode()).hexdigest() if source else None,
                             strategy=strategy, tags=["test"], evaluation=evaluation, decision=decision,
                             metric=_geomean(us) if us and not bad else None, commit=commit, details=details,
                             holdout=holdout)
        row = store.attempt(attempt_id)
    folder = runs.attempt_dir(exp, attempt_id)
    runs.write(folder, "prompt.md", f"# Task\nMake matmul faster (attempt {attempt_id}).\n")
    runs.write(folder, "response.md", f"Strategy: {strategy}\n\n```c\n{source or ''}```\n")
    if source:
        runs.write(folder, "candidate.c", source)
    runs.write_result(exp, row)
    return attempt_id


def record_search(tmp_path: Path) -> Path:
    """A matmul experiment with a baseline and one attempt of each interesting outcome."""
    root = tmp_path / "matmul"
    shutil.copytree(FIXTURE, root)
    exp = load_experiment(root)
    with Store(exp.store_path) as store:
        store.record_baseline(source=NAIVE, evaluation=Evaluation(ok=True, cases=_cases(BASE_US), seed=1),
                              metric=_geomean(BASE_US))
    add_attempt(root, Outcome.EXTRACT_ERROR, reason="no fenced code block in the reply", tokens=(900, 10))
    add_attempt(root, Outcome.COMPILE_ERROR, strategy="forgot a semicolon", source=NAIVE.replace(";", "", 1),
                reason="candidate.c:3:27: error: expected ';' before 'for'")
    add_attempt(root, Outcome.INVALID, strategy=EVIL, source=NAIVE.replace("acc;", "acc * 0.5f;"),
                us={"n96": 880.0}, bad={"n128": "max abs diff 3.1e-2 at [0,5]"},
                reason="n128: max abs diff 3.1e-2 at [0,5]")
    fast = {"n96": 420.0, "n128": 1000.0, "n160": 2000.0}
    add_attempt(root, Outcome.ACCEPTED, strategy="ikj loop order for unit stride", source=IKJ, us=fast,
                speedup=2.1, holdout_us={"n61": 140.0}, commit="a1b2c3d", tokens=(1000, 220),
                reason="x2.10 [1.90, 2.30] over #0 on every search case")
    add_attempt(root, Outcome.DUPLICATE, strategy="same again", source=IKJ, reason="same program as attempt 4")
    add_attempt(root, Outcome.SPECIALIST, strategy="unroll the inner loop by 4", source=UNROLLED,
                us={"n96": 430.0, "n128": 1010.0, "n160": 1800.0}, speedup=0.99, commit="e4f5a6b",
                reason="not better overall; best on n160")
    add_attempt(root, Outcome.SLOWER, strategy="transpose b first", source=IKJ.replace("aik", "x"),
                us={"n96": 440.0, "n128": 1050.0, "n160": 2050.0}, speedup=0.97,
                reason="x0.97 [0.95, 0.99]: not faster than the incumbent")
    return root


def _figures(page: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" class="figure-data" data-for="chart-(\w+)">(.*?)</script>',
                       page, re.S)
    return {key: json.loads(text) for key, text in found}


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, str]:
    root = record_search(tmp_path)
    exp = load_experiment(root)
    with Store(exp.store_path) as store:
        path = write_html_report(store, exp)
    return root, path.read_text()


def test_report_is_one_offline_file_with_plotly_inside(report: tuple[Path, str]) -> None:
    root, page = report
    assert (root / "report.html").is_file()
    assert "matmul" in page
    plotly_js = get_plotlyjs()
    assert plotly_js in page  # Plotly itself is inside, not linked
    ours = page.replace(plotly_js, "")
    assert not re.search(r'(src|href)="(https?:)?//', ours), "no CDN or remote asset may be referenced"
    assert "<script src=" not in ours and '<link rel="stylesheet"' not in ours


def test_best_metric_steps_down_at_the_accepted_attempt_and_every_attempt_is_a_point(
        report: tuple[Path, str]) -> None:
    figs = _figures(report[1])
    assert set(figs) == {"best", "cases", "usage", "winners", "lineage"}
    step, *points = figs["best"]["data"]
    assert step["line"]["shape"] == "hv" and step["x"] == [0, 1, 2, 3, 4, 5, 6, 7]
    base, fast = _geomean(BASE_US), _geomean({"n96": 420.0, "n128": 1000.0, "n160": 2000.0})
    assert step["y"] == pytest.approx([base] * 4 + [fast] * 4)
    by_outcome = {p["name"]: p["x"] for p in points}
    assert by_outcome == {"extract_error": [1], "compile_error": [2], "invalid": [3], "accepted": [4],
                          "duplicate": [5], "specialist": [6], "slower": [7]}
    failed = next(p for p in points if p["name"] == "compile_error")
    assert failed["marker"]["symbol"] == ["x"] and failed["y"] == pytest.approx([base])


def test_per_case_speedups_show_search_and_holdout_side_by_side(report: tuple[Path, str]) -> None:
    bars = _figures(report[1])["cases"]["data"]
    incumbent = [b for b in bars if b["name"] == "#4 incumbent"]
    search, holdout = incumbent
    assert search["x"] == ["n96", "n128", "n160"]
    assert search["y"] == pytest.approx([900 / 420, 2100 / 1000, 4200 / 2000])
    assert holdout["x"] == ["n61"] and holdout["y"] == pytest.approx([260 / 140]) and holdout["xaxis"] == "x2"
    assert any(b["name"] == "#6 specialist" for b in bars)


def test_tokens_and_cost_accumulate_and_winners_carry_intervals(report: tuple[Path, str]) -> None:
    figs = _figures(report[1])
    prompt, completion, cost = figs["usage"]["data"]
    assert prompt["y"][-1] == 900 * 6 + 1000 and completion["y"][-1] == 10 + 200 * 5 + 220
    assert cost["y"][-1] == 0.0
    winners = {t["y"][0]: t for t in figs["winners"]["data"] if t.get("error_x")}
    assert set(winners) == {"#4", "#6"}
    assert winners["#4"]["error_x"]["array"][0] == pytest.approx(0.2)
    lineage = figs["lineage"]["data"][1]
    assert lineage["x"] == [0, 4, 6] and [c[0] for c in lineage["customdata"]] == [-1, 0, 4]


def test_memory_winners_diff_and_attempts_are_shown_escaped(report: tuple[Path, str]) -> None:
    page = report[1]
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "Keeps failing" in text and "expected ';' before 'for'" in text
    assert "Unexplored" in text and "blocking" in text
    assert "x2.100 [1.900, 2.300] over #0" in " ".join(text.split())
    assert "+++ attempt-4.c" in text and "const float aik" in text
    assert 'class="gi"' in page  # Pygments marked the diff's added lines
    assert EVIL not in page and html.escape(EVIL) in page
    for n in range(1, 8):
        assert f'id="attempt-{n}"' in page and f'href="runs/{n:04d}/"' in page
    assert "no fenced code block in the reply" in text


def test_report_only_reads_the_store_and_renders_an_unstarted_experiment(tmp_path: Path) -> None:
    root = record_search(tmp_path)
    exp = load_experiment(root)
    db = exp.store_path
    before = db.read_bytes()
    with Store(ReadOnlySqliteBackend(db)) as store:
        write_html_report(store, exp)  # a read-only connection suffices: nothing is written
        with pytest.raises(ReadOnlyStoreError, match="opened read-only"):
            store.set_meta("touched", "yes")
        with pytest.raises(StoreError, match="cannot be written"):  # SQLite refuses too, said as one line
            store.backend.execute("INSERT INTO meta (key, value) VALUES ('touched', 'yes')")
    assert db.read_bytes() == before
    wal = db.with_name("looplab.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # SQLite may open an empty WAL; nothing is logged
    fresh = tmp_path / "fresh"
    shutil.copytree(FIXTURE, fresh)
    assert open_readonly(load_experiment(fresh)) is None
    with Store(load_experiment(fresh).store_path) as store:
        page = write_html_report(store, load_experiment(fresh)).read_text()
    assert "no baseline measured yet" in page and "no winners yet" in page


def test_report_of_a_real_replayed_search(tmp_path: Path) -> None:
    """The whole loop (real gcc, sandbox, SQLite) on replayed replies, then the report of what it recorded."""
    from test_loop_e2e import REPLIES, looplab, write_replies

    root = tmp_path / "matmul"
    shutil.copytree(FIXTURE, root)
    replies = write_replies(tmp_path / "replies.jsonl", REPLIES)
    result = looplab("run", str(root), "--model", f"replay:{replies}", "--loop", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    exp = load_experiment(root)
    with Store(exp.store_path) as store:
        rows = store.attempts()
        page = write_html_report(store, exp).read_text()
    assert len(rows) >= 6 and rows[0].outcome is Outcome.BASELINE
    figs = _figures(page)
    points = {x: t["name"] for t in figs["best"]["data"][1:] for x in t["x"]}
    assert points == {r.id: r.outcome.value for r in rows[1:]}  # every attempt, coloured by its outcome
    assert figs["usage"]["data"][0]["y"][-1] == sum(r.usage.prompt_tokens for r in rows)
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for r in rows:
        assert f'id="attempt-{r.id}"' in page
        assert " ".join(r.reason.split())[:60] in " ".join(text.split())
    failing = text[text.index("Keeps failing"):text.index("Unexplored")]
    assert "compile_error" in failing and "invalid" in failing and "extract_error" in failing
