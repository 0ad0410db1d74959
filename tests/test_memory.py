"""Memory built from a real store: clustering, holdout secrecy, unexplored ideas, bounded markdown."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from looplab.config import Experiment, load_experiment
from looplab.propose.memory import build_memory, first_error_line, normalise, render_memory_md, write_memory
from looplab.records import CaseResult, Decision, Evaluation, Outcome
from looplab.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


@pytest.fixture
def exp(tmp_path: Path) -> Experiment:
    shutil.copytree(FIXTURE, tmp_path / "matmul")
    return load_experiment(tmp_path / "matmul")


@pytest.fixture
def store(exp: Experiment):
    with Store(exp.store_path) as s:
        s.record_baseline(source=exp.baseline_source, metric=100.0,
                          evaluation=Evaluation(ok=True, cases={"n96": CaseResult("n96", True, [100.0])}))
        yield s


def _finish(store: Store, outcome: Outcome, **kw) -> int:
    aid = store.begin_attempt(model="m", details={"next_ideas": kw.pop("next_ideas", [])})
    store.finish_attempt(aid, outcome=outcome, **kw)
    return aid


def _compile_error(store: Store, log: str) -> int:
    ev = Evaluation(ok=False, failure=Outcome.COMPILE_ERROR, reason="build failed", log=log)
    return _finish(store, Outcome.COMPILE_ERROR, evaluation=ev)


def _invalid(store: Store, case: str, error: str, outcome: Outcome = Outcome.INVALID) -> int:
    cases = {"n96": CaseResult("n96", True, [90.0]), case: CaseResult(case, False, error=error)}
    ev = Evaluation(ok=False, cases=cases, failure=outcome, reason=f"wrong result on {case}")
    return _finish(store, outcome, evaluation=ev)


def test_normalise_strips_locations_names_paths_numbers() -> None:
    a = normalise("/tmp/sb-1/candidate.c:12:5: error: 'tmp' undeclared (first use in this function)")
    b = normalise("/tmp/sb-9/candidate.c:40:17: error: 'acc' undeclared (first use in this function)")
    assert a == b == "error: '_' undeclared (first use in this function)"
    assert normalise("c[3][5]=0.25, expected -1e-3") == "c[N][N]=N, expected N"
    log = "cc1: note: x\ncandidate.c: In function 'matmul':\ncandidate.c:3:1: error: expected ';'\n1 error generated"
    assert first_error_line(log) == "candidate.c:3:1: error: expected ';'"
    assert first_error_line("Traceback:\n  File \"x.py\", line 2\nNameError: name 'q' is not defined") \
        .startswith("NameError")


def test_compile_errors_differing_only_in_names_and_lines_merge(store: Store, exp: Experiment) -> None:
    ids = [
        _compile_error(store, "In function 'matmul':\n/tmp/a/candidate.c:12:5: error: 'tmp' undeclared (first use in this function)"),
        _compile_error(store, "/tmp/b/candidate.c:40:9: error: 'acc' undeclared (first use in this function)\n"),
        _compile_error(store, "/tmp/c/candidate.c:7:1: error: expected ';' before '}' token"),
        _compile_error(store, "/tmp/d/candidate.c:99:2: error: 'sum' undeclared (first use in this function)"),
    ]
    failing = build_memory(store, exp)["failing"]
    assert [(f["category"], f["count"]) for f in failing] == [("compile_error", 3), ("compile_error", 1)]
    top = failing[0]
    assert top["attempts"] == [ids[0], ids[1], ids[3]] and top["last_attempt"] == ids[3]
    assert top["message"] == "error: 'sum' undeclared (first use in this function)"  # the latest, no path


def test_invalid_grouped_by_case_and_first_words(store: Store, exp: Experiment) -> None:
    _invalid(store, "n128", "c[3][5]=0.1, expected 0.2")
    _invalid(store, "n128", "c[40][1]=7, expected 9")
    _invalid(store, "n160", "c[3][5]=0.1, expected 0.2")
    _invalid(store, "n128", "write past the end of c")
    failing = build_memory(store, exp)["failing"]
    sigs = {f["signature"]: f["count"] for f in failing}
    assert sigs == {"n128: c[N][N]=N, expected N": 2, "n160: c[N][N]=N, expected N": 1,
                    "n128: write past the end of": 1}


def test_screen_rejections_grouped_by_rule(store: Store, exp: Experiment) -> None:
    _finish(store, Outcome.SCREEN_REJECTED, reason="forbidden identifier 'system' at line 4",
            details={"rule": "forbidden identifier 'system'"})
    _finish(store, Outcome.SCREEN_REJECTED, reason="forbidden identifier 'system' at line 9",
            details={"rule": "forbidden identifier 'system'"})
    _finish(store, Outcome.SCREEN_REJECTED, reason="source is 70000 bytes, over max_bytes 20000")
    failing = build_memory(store, exp)["failing"]
    assert [(f["signature"], f["count"]) for f in failing] == [
        ("forbidden identifier 'system'", 2), ("source is N bytes, over max_bytes N", 1)]


def test_holdout_names_never_appear(store: Store, exp: Experiment) -> None:
    assert exp.holdout_cases == ["n61"]
    _invalid(store, "n61", "c[0][0]=1, expected 2 on n61")  # harness error naming the holdout too
    _invalid(store, "n61", "c[9][9]=1, expected 3", outcome=Outcome.OVERFIT)
    _finish(store, Outcome.OVERFIT, reason="failed holdout n61")
    dec = Decision(outcome=Outcome.SPECIALIST, reason="best on n96, n61", best_cases=["n96", "n61"])
    _finish(store, Outcome.SPECIALIST, strategy="special-case n61 sizes", decision=dec,
            next_ideas=["pad n61 to 64"])
    memory = write_memory(store, exp)
    text = (exp.root / "MEMORY.md").read_text() + (exp.root / "MEMORY.json").read_text()
    assert "n61" not in text
    assert [(f["category"], f["signature"], f["count"]) for f in memory["failing"]] == [
        ("overfit", "failed a hidden holdout case", 3)]
    assert memory["worked"][0]["best_cases"] == ["n96"]
    assert "failed a hidden holdout case" in json.dumps(memory)


def test_worked_lists_winners_with_intervals(store: Store, exp: Experiment) -> None:
    dec = Decision(outcome=Outcome.ACCEPTED, reason="faster", speedup=1.41, ci_low=1.37, ci_high=1.45,
                   best_cases=["n96", "n128"])
    aid = _finish(store, Outcome.ACCEPTED, strategy="ikj loop order", decision=dec)
    _finish(store, Outcome.SLOWER, strategy="unroll by 8")
    memory = build_memory(store, exp)
    assert memory["worked"] == [{"id": aid, "outcome": "accepted", "strategy": "ikj loop order", "speedup": 1.41,
                                 "ci_low": 1.37, "ci_high": 1.45, "best_cases": ["n96", "n128"], "commit": None}]
    md = render_memory_md(memory, 4000)
    assert f"- #{aid} accepted x1.41 [1.37, 1.45]: ikj loop order; best on n96, n128" in md
    assert "slower: unroll by 8" in md


def test_unexplored_drops_ideas_an_attempt_mentions(store: Store, exp: Experiment) -> None:
    assert exp.config.ideas == ["loop interchange (ikj)", "blocking", "unroll"]
    _finish(store, Outcome.SLOWER, strategy="Cache-blocked tiles of 32", tags=[],
            next_ideas=["AVX2 intrinsics", "Unroll", "transpose B first"])
    _finish(store, Outcome.COMPILE_ERROR, strategy="transposed b for unit stride")
    _finish(store, Outcome.MODEL_ERROR, strategy="avx2 intrinsics")  # never ran: does not count
    ideas = build_memory(store, exp)["unexplored"]
    assert ideas == [
        {"idea": "loop interchange (ikj)", "suggested_by": None},
        {"idea": "unroll", "suggested_by": None},
        {"idea": "AVX2 intrinsics", "suggested_by": 1},
    ]


def test_markdown_bound_after_500_attempts(store: Store, exp: Experiment) -> None:
    ideas = [f"idea number {i} about prefetching distance" for i in range(5)]
    for i in range(500):
        kind = i % 5
        if kind == 0:
            _compile_error(store, f"/tmp/x{i}/candidate.c:{i}:1: error: unknown type name 'T{i % 7}x{i}'")
        elif kind == 1:
            _invalid(store, ["n96", "n128", "n160"][i % 3], f"c[{i}][0]=1, expected {i}")
        elif kind == 2:
            _finish(store, Outcome.SLOWER, strategy=f"variant {i}: different tile {i}x{i}", next_ideas=ideas)
        elif kind == 3:
            _finish(store, Outcome.TIMEOUT, reason=f"timed out after {i} s")
        else:
            dec = Decision(outcome=Outcome.SPECIALIST, reason="best on one", speedup=0.99, ci_low=0.9,
                           ci_high=1.1, best_cases=["n96"])
            _finish(store, Outcome.SPECIALIST, strategy=f"specialist {i} " + "x" * 400, decision=dec)
    memory = build_memory(store, exp, window=1000)
    assert sum(f["count"] for f in memory["failing"]) == 400
    assert len(memory["worked"]) == 100
    # A window bounds the work: failures from the latest attempts only, but every winner.
    recent = build_memory(store, exp, window=100)
    assert sum(f["count"] for f in recent["failing"]) == 80 and len(recent["worked"]) == 100
    for limit in (0, 10, 60, 300, 1000, 4000):
        md = render_memory_md(memory, limit)
        assert len(md) <= limit
    md = render_memory_md(memory, 4000)
    assert len(md) > 3000  # the budget is used, not left empty
    for section in ("## Worked", "## Keeps failing", "## Unexplored"):
        assert section in md
    assert "#500 specialist" in md  # newest winner kept (baseline is #0)
    assert "100× compile_error" in md  # the frequent cluster kept
    assert "more" in md
    full = render_memory_md(memory, 10**7)
    assert "more\n" not in full and full.count("\n- #") == 100


def test_write_memory_regenerates_from_scratch(store: Store, exp: Experiment) -> None:
    (exp.root / "MEMORY.md").write_text("stale hand edit")
    write_memory(store, exp)
    md = (exp.root / "MEMORY.md").read_text()
    assert "stale" not in md and md.startswith("# Memory")
    assert "- (nothing yet)" in md  # no winners, no failures yet
    assert json.loads((exp.root / "MEMORY.json").read_text())["unexplored"][0]["idea"] == "loop interchange (ikj)"


def test_memory_is_rebuilt_only_when_the_store_changed(store: Store, exp: Experiment) -> None:
    first = build_memory(store, exp)
    assert build_memory(store, exp) is first  # the prompt after a write reads what was just written
    _compile_error(store, "x.c:3:5: error: expected ';' before '}' token")
    second = build_memory(store, exp)
    assert second is not first and second["failing"][0]["count"] == 1
    store.set_meta("insights", "- unrolling by 8 beat 4")
    assert build_memory(store, exp)["insights"] == ["unrolling by 8 beat 4"]
