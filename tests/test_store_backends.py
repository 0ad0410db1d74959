"""One Store over three backends: the Protocol, the read-only view refusing writes, and migration 7
(holdout results moving out of details into columns of their own), on real SQLite files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import looplab.store.core
from looplab.records import CaseResult, Decision, Evaluation, Outcome, Usage
from looplab.store import Backend, Holdout, ReadOnlyStoreError, Store, open_readonly, open_store
from looplab.store.schema import MIGRATIONS
from looplab.store.sqlite import ReadOnlySqliteBackend, SqliteBackend

ROOT = Path(__file__).resolve().parents[1]
LEGACY = {"holdout_ok": False, "holdout_speedup": 0.8,
          "holdout_cases": {"n61": {"case": "n61", "ok": False, "samples": [], "error": "max abs diff 3"}}}


def _evaluation(median: float) -> Evaluation:
    return Evaluation(ok=True, cases={"n96": CaseResult(case="n96", ok=True, samples=[median])}, seed=3, log="ok")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "exp" / ".looplab" / "looplab.db"


def _store_at_version(backend: Callable[[], Backend], version: int, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A store as an older looplab left it: only the first `version` migrations applied."""
    with monkeypatch.context() as m:
        m.setattr(looplab.store.core, "MIGRATIONS", MIGRATIONS[:version])
        return Store(backend())


def test_every_backend_is_a_backend(db: Path) -> None:
    with Store(db) as s:
        assert isinstance(s.backend, Backend) and not s.read_only
    ro = ReadOnlySqliteBackend(db)
    assert isinstance(ro, Backend) and ro.read_only
    ro.close()
    from looplab.store.postgres import PostgresBackend

    assert all(hasattr(PostgresBackend, name) for name in
               ("execute", "transaction", "lock_ids", "prepare_schema", "migration_statements",
                "acceptance_lock", "close", "now_sql"))


def test_store_of_a_path_is_the_sqlite_backend(db: Path) -> None:
    with Store(db) as s, Store(str(db)) as again:
        assert type(s.backend) is SqliteBackend and s.backend.path == db and again.backend.path == db
        assert repr(s) == f"Store({db})"


def test_a_read_only_store_refuses_every_write_with_one_clear_line(db: Path) -> None:
    with Store(db) as s:
        s.record_baseline(source="b", evaluation=_evaluation(100.0), metric=100.0)
        aid = s.begin_attempt(model="m")
    before = db.read_bytes()
    with Store(ReadOnlySqliteBackend(db)) as ro:
        assert ro.read_only and ro.baseline().metric == 100.0 and ro.in_flight() == [aid]  # reads work
        writes = [
            lambda: ro.begin_attempt(model="m"),
            lambda: ro.finish_attempt(aid, outcome=Outcome.SLOWER),
            lambda: ro.record_baseline(source="b", evaluation=_evaluation(1.0), metric=1.0),
            lambda: ro.record_call(attempt_id=None, model="m", kind="propose", usage=Usage(), latency_s=0),
            lambda: ro.set_meta("k", "v"),
            lambda: ro.set_commit(aid, "abc"),
            lambda: ro.discard_attempt(aid),
            lambda: ro.heartbeat(),
            lambda: ro.mark_interrupted(),
            lambda: ro.reset(),
            lambda: ro.acceptance_lock(),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyStoreError) as e:
                write()
            msg = str(e.value)
            assert str(db) in msg and "opened read-only" in msg and "fix:" in msg and "\n" not in msg
            assert e.value.kind == "readonly"
    assert db.read_bytes() == before and ReadOnlyStoreError.__mro__[1].__name__ == "StoreError"


def test_open_store_picks_the_backend_in_one_place(tmp_path: Path) -> None:
    import shutil

    from looplab.config import load_experiment

    shutil.copytree(ROOT / "tests" / "fixtures" / "matmul", tmp_path / "matmul")
    exp = load_experiment(tmp_path / "matmul")
    with pytest.raises(FileNotFoundError):
        open_store(exp, "", read_only=True)  # looking never creates the store
    assert open_readonly(exp, "") is None and not exp.store_path.exists()
    with open_store(exp, "") as s:
        assert type(s.backend) is SqliteBackend
        s.set_meta("k", "v")
    with open_store(exp, "", read_only=True) as ro:
        assert type(ro.backend) is ReadOnlySqliteBackend and ro.get_meta("k") == "v"
    exp.store_path.write_bytes(b"not a database at all" * 100)
    assert open_readonly(exp, "") is None


def test_holdout_round_trips_in_its_own_columns(db: Path) -> None:
    held = Holdout(ok=True, speedup=1.4, cases={"n61": CaseResult(case="n61", ok=True, samples=[5.0, 6.0])})
    with Store(db) as s:
        aid = s.begin_attempt(model="m")
        s.finish_attempt(aid, outcome=Outcome.ACCEPTED, evaluation=_evaluation(50.0), holdout=held,
                         decision=Decision(Outcome.ACCEPTED, "x2", speedup=2.0), details={"k": 1})
        plain = s.begin_attempt(model="m")
        s.finish_attempt(plain, outcome=Outcome.COMPILE_ERROR)
        row, none = s.attempt(aid), s.attempt(plain)
    assert row.holdout == held and not any(k.startswith("holdout") for k in row.details)
    assert none.holdout is None
    assert set(row.all_cases()) == {"n96", "n61"} and row.all_cases()["n61"].median == 5.5
    con = sqlite3.connect(db)
    assert con.execute("SELECT holdout_ok, holdout_speedup FROM attempts WHERE id = ?", (aid,)).fetchone() == (1, 1.4)


def test_the_old_details_keys_still_land_in_the_columns(db: Path) -> None:
    """A writer that still passes holdout_* in details (before it passes holdout=) is recorded the same."""
    with Store(db) as s:
        aid = s.begin_attempt(model="m")
        details = {"judged_against": 0, **LEGACY}
        s.finish_attempt(aid, outcome=Outcome.OVERFIT, details=details)
        row = s.attempt(aid)
    assert details["holdout_ok"] is False  # the caller's dict is left alone
    assert row.details == {"judged_against": 0}
    assert row.holdout.ok is False and row.holdout.speedup == 0.8 and row.holdout.cases["n61"].error == "max abs diff 3"


def test_all_cases_prefers_the_search_result_on_a_name_in_both(db: Path) -> None:
    with Store(db) as s:
        aid = s.begin_attempt(model="m")
        s.finish_attempt(aid, outcome=Outcome.SLOWER, evaluation=_evaluation(50.0),
                         holdout=Holdout(ok=True, cases={"n96": CaseResult(case="n96", ok=True, samples=[9.0])}))
        assert s.attempt(aid).all_cases()["n96"].median == 50.0


def legacy_store(backend: Callable[[], Backend], monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """A version-6 store whose attempts keep holdout results in details, as looplab wrote them then."""
    with _store_at_version(backend, 6, monkeypatch) as old:
        assert old.schema_version() == 6
        old.record_baseline(source="b", evaluation=_evaluation(100.0), metric=100.0)
        won = old.begin_attempt(model="m")
        old.backend.execute(
            "UPDATE attempts SET outcome = 'accepted', ended_at = started_at, details = ? WHERE id = ?",
            (json.dumps({"judged_against": 0, "holdout_ok": True, "holdout_speedup": 1.9,
                         "holdout_cases": {"n61": {"case": "n61", "ok": True, "samples": [4.0]}}}), won))
        overfit = old.begin_attempt(model="m")
        old.backend.execute("UPDATE attempts SET outcome = 'overfit', details = ? WHERE id = ?",
                            (json.dumps(LEGACY), overfit))
    return won, overfit


def assert_legacy_rows(s: Store, won: int, overfit: int) -> None:
    a, b = s.attempt(won), s.attempt(overfit)
    assert a.holdout == Holdout(ok=True, speedup=1.9, cases={"n61": CaseResult(case="n61", ok=True, samples=[4.0])})
    assert a.details == {"judged_against": 0}
    assert b.holdout.ok is False and b.holdout.speedup == 0.8 and b.details == {}
    assert s.baseline().holdout is None and s.baseline().details["seed"] == 3


def test_a_migrated_old_store_reads_its_holdout_results_from_the_columns(db: Path, monkeypatch) -> None:
    won, overfit = legacy_store(lambda: SqliteBackend(db), monkeypatch)
    with Store(db) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert_legacy_rows(s, won, overfit)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, holdout_ok, holdout_speedup, details FROM attempts ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(0, None, None), (won, 1, 1.9), (overfit, 0, 0.8)]
    assert all("holdout" not in r[3] for r in rows)  # moved, not copied


def test_a_read_only_view_of_an_unmigrated_store_reads_holdout_from_details(db: Path, monkeypatch) -> None:
    won, overfit = legacy_store(lambda: SqliteBackend(db), monkeypatch)
    with Store(ReadOnlySqliteBackend(db)) as ro:  # the dashboard never migrates
        assert ro.schema_version() == 6
        assert_legacy_rows(ro, won, overfit)
