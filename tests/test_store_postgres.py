"""The store on a real PostgreSQL server: the same answers as SQLite, one schema per experiment,
advisory locks, owners, URLs and errors. The server is PostgreSQL's own initdb/pg_ctl in a temp dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest
from postgres_server import PostgresServer, find_or_install
from test_store import silent_loop_scenario
from test_store_backends import assert_legacy_rows, legacy_store

from looplab.config import Experiment, load_experiment
from looplab.errors import UserError
from looplab.records import CaseComparison, CaseResult, Decision, Evaluation, Outcome, Usage
from looplab.store import ReadOnlyStoreError, Store, open_store
from looplab.store.schema import MIGRATIONS
from looplab.store.sqlite import SqliteBackend

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (fix: pip install 'looplab[postgres]')")
from looplab.store.postgres import PostgresBackend, redact, schema_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pg_url() -> str:
    bin_dir, why = find_or_install()
    if bin_dir is None:
        pytest.skip(why)
    server = PostgresServer(bin_dir).start()
    yield server.url
    server.stop()


@pytest.fixture
def pg(pg_url: str, request: pytest.FixtureRequest) -> Store:
    store = pg_store(pg_url, schema_name(request.node.name))
    yield store
    store.backend.drop()
    store.close()


def pg_store(url: str, schema: str) -> Store:
    return Store(PostgresBackend(url, schema=schema))


def _evaluation(medians: dict[str, float]) -> Evaluation:
    cases = {n: CaseResult(case=n, ok=True, samples=[m * 0.99, m, m * 1.01]) for n, m in medians.items()}
    return Evaluation(ok=True, cases=cases, seed=7, wall_s=1.5, log="built ok")


def _decision(outcome: Outcome, speedup: float) -> Decision:
    comp = CaseComparison("n96", speedup, speedup - 0.05, speedup + 0.05, 80.0, 80.0 * speedup, 3)
    return Decision(outcome=outcome, reason=f"x{speedup}", speedup=speedup, ci_low=speedup - 0.05,
                    ci_high=speedup + 0.05, cases={"n96": comp}, best_cases=["n96"], rounds=3)


def _scenario(s: Store) -> dict:
    """Every query of the store after a varied history; what SQLite and PostgreSQL must agree on."""
    s.record_baseline(source="b", evaluation=_evaluation({"n96": 100.0}), metric=100.0)
    outcomes = [Outcome.COMPILE_ERROR, Outcome.ACCEPTED, Outcome.SLOWER, Outcome.SPECIALIST,
                Outcome.ACCEPTED, Outcome.COMPILE_ERROR]
    for i, o in enumerate(outcomes):
        aid = s.begin_attempt(model="m", parent_id=0, details={"i": i})
        s.record_call(attempt_id=aid, model="m", kind="propose", usage=Usage(10 + i, 2, 1, 0.25),
                      latency_s=0.5, response=f"reply {i}")
        s.finish_attempt(aid, outcome=o, source=f"src{i}", source_hash=f"h{i % 3}", metric=100.0 - i,
                         evaluation=_evaluation({"n96": 90.0 - i}),
                         decision=_decision(o, 1.0 + i / 10) if o.is_winner else None, tags=["t"])
    s.record_call(attempt_id=None, model="m", kind="propose", usage=Usage(1, 1, 0, None), latency_s=1.0,
                  error="HTTP 500")
    s.record_call(attempt_id=None, model="x", kind="summary", usage=Usage(5, 5, 0, None), latency_s=1.0)
    gone = s.begin_attempt(model="m")
    assert s.discard_attempt(gone) and s.begin_attempt(model="m") == gone  # discarded ids are reused
    s.set_commit(5, "abc1234")
    s.set_meta("k", "v1")
    s.set_meta("k", "v2")
    strip = {"started_at", "ended_at", "owner"}
    rows = [{k: v for k, v in asdict(r).items() if k not in strip} for r in s.attempts()]
    calls = [{k: v for k, v in c.items() if k not in ("ts", "id")} for c in s.calls()]
    return {
        "rows": rows, "calls": calls, "incumbent": s.incumbent().id, "winners": [w.id for w in s.winners()],
        "counts": s.outcome_counts(), "hash": s.find_by_hash("h1").id, "none": s.find_by_hash("zz"),
        "in_flight": s.in_flight(), "usage": s.usage_total(), "usage5": s.attempt(5).usage,
        "replies": s.replies(), "meta": (s.get_meta("k"), s.get_meta("missing", "d")),
        "newest": [a.id for a in s.attempts(newest_first=True, limit=2)],
        "failed": [a.id for a in s.attempts(outcomes=[Outcome.COMPILE_ERROR])],
        "no_outcomes": s.attempts(outcomes=[]), "version": s.schema_version(),
    }


def test_postgres_answers_exactly_as_sqlite(pg: Store, tmp_path: Path) -> None:
    with Store(tmp_path / "looplab.db") as lite:
        expected = _scenario(lite)
    got = _scenario(pg)
    assert got == expected
    assert got["usage"] == Usage(81, 18, 6, None) and type(got["usage"].prompt_tokens) is int
    assert got["incumbent"] == 5 and got["version"] == len(MIGRATIONS)


def test_schema_is_portable_sql_in_one_schema_per_experiment(pg: Store, pg_url: str) -> None:
    other = pg_store(pg_url, schema_name("other experiment"))
    try:
        pg.begin_attempt(model="a")
        assert other.begin_attempt(model="b") == 1  # its own ids
        assert [r.model for r in other.attempts()] == ["b"] and [r.model for r in pg.attempts()] == ["a"]
        with psycopg.connect(pg_url) as con:
            types = dict(con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = 'attempts'", (pg.backend.schema,)).fetchall())
            versions = con.execute(f'SELECT version FROM "{pg.backend.schema}".schema_migrations ORDER BY 1').fetchall()
        assert types["started_at"] == "double precision" and types["id"] == "integer"
        assert types["owner_token"] == "text"
        assert [v[0] for v in versions] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        other.backend.drop()
        other.close()
    with psycopg.connect(pg_url) as con:
        left = con.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                           (other.backend.schema,)).fetchall()
    assert left == []  # drop() removed that experiment, and only it
    assert pg.attempts()[0].model == "a"


def test_reopen_continues_ids_and_foreign_keys_hold(pg: Store, pg_url: str) -> None:
    pg.record_baseline(source="b", evaluation=_evaluation({"n96": 100.0}), metric=100.0)
    assert pg.begin_attempt(model="m") == 1
    with pg_store(pg_url, pg.backend.schema) as again:
        assert again.begin_attempt(model="m", parent_id=1) == 2
        assert again.schema_version() == len(MIGRATIONS)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            again.begin_attempt(model="m", parent_id=42)
        assert again.begin_attempt(model="m") == 3  # the failed insert took no id
    pg.reset()
    assert pg.attempts() == [] and pg.usage_total() == Usage(0, 0, 0, 0.0)


def test_acceptance_lock_excludes_other_connections(pg: Store, pg_url: str) -> None:
    with pg_store(pg_url, pg.backend.schema) as rival, pg_store(pg_url, "looplab_else") as unrelated:
        held = pg.acceptance_lock()
        with held:
            assert rival.acceptance_lock()._try() is False
            assert pg.acceptance_lock()._try() is False  # a second coroutine of the same loop waits too
            other = unrelated.acceptance_lock()
            assert other._try() is True  # another experiment's lock is another key
            other.__exit__(None, None, None)
        mine = rival.acceptance_lock()
        assert mine._try() is True
        mine.__exit__(None, None, None)
        unrelated.backend.drop()


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            text=True, env=env)


def test_mark_interrupted_spares_live_loops_and_other_hosts(pg: Store, pg_url: str) -> None:
    code = """
        import sys, time
        from looplab.store import Store
        from looplab.store.postgres import PostgresBackend
        s = Store(PostgresBackend(sys.argv[1], schema=sys.argv[2]))
        print(s.begin_attempt(model="loop"), flush=True)
        time.sleep(120)
    """
    live, doomed = _python(code, pg_url, pg.backend.schema), _python(code, pg_url, pg.backend.schema)
    try:
        live_id, doomed_id = int(live.stdout.readline()), int(doomed.stdout.readline())
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        far = pg.begin_attempt(model="elsewhere")
        pg.backend.execute("UPDATE attempts SET owner_host = ?, owner_token = ? WHERE id = ?", ("other-host", "1.x", far))
        mine = pg.begin_attempt(model="me")
        assert pg.mark_interrupted() == sorted([doomed_id, mine])
        assert pg.attempt(live_id).outcome is None and pg.attempt(far).outcome is None
        assert pg.attempt(doomed_id).outcome is Outcome.INTERRUPTED
        assert pg.attempt(live_id).owner == f"{pg.owner.host}:{live.pid}"
    finally:
        live.kill()
        live.wait(timeout=30)
    assert pg.mark_interrupted() == [live_id]


def test_a_loop_on_another_host_that_stopped_beating_is_dead(pg: Store) -> None:
    silent_loop_scenario(pg)  # the same scenario as on SQLite, on the server's clock


def test_bad_urls_are_user_errors(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = pg_url.rsplit(":", 1)[1].split("/")[0]
    closed = f"postgresql://me:s3cret@127.0.0.1:{int(port) + 1 if int(port) < 65535 else 1}/db"
    with pytest.raises(UserError) as e:
        PostgresBackend(closed, schema="looplab_x")
    msg = str(e.value)
    assert "cannot connect" in msg and "fix:" in msg and "s3cret" not in msg and "me:***@" in msg
    assert "\n" not in msg
    assert redact("postgresql://u:p@h/d") == "postgresql://u:***@h/d" and redact("postgresql://u@h/d") == "postgresql://u@h/d"

    experiment = _experiment(tmp_path)
    with pytest.raises(UserError, match="not a store URL"):
        open_store(experiment, "mysql://x/y")
    monkeypatch.setenv("LOOPLAB_STORE", pg_url)
    with open_store(experiment) as s:  # the environment names the store when --store is not given
        assert isinstance(s.backend, PostgresBackend) and s.backend.schema == "looplab_matmul"
        s.backend.drop()
    monkeypatch.delenv("LOOPLAB_STORE")
    with open_store(experiment) as s:
        assert isinstance(s.backend, SqliteBackend) and s.backend.path == experiment.store_path
    with open_store(experiment, "sqlite:///elsewhere.db") as s:
        assert s.backend.path == experiment.root / "elsewhere.db"


def test_schema_names_are_plain_and_distinct() -> None:
    assert schema_name("matmul") == "looplab_matmul"
    assert schema_name("My Exp") != schema_name("my_exp") and schema_name("My Exp").startswith("looplab_my_exp_")
    long = schema_name("x" * 200)
    assert len(long) <= 63 and long.startswith("looplab_x")


def _experiment(tmp_path: Path) -> Experiment:
    import shutil

    root = tmp_path / "matmul"
    shutil.copytree(ROOT / "tests" / "fixtures" / "matmul", root)
    return load_experiment(root)


def test_acceptance_lock_is_released_when_its_holder_is_killed(pg: Store, pg_url: str) -> None:
    proc = _python("""
        import sys, time
        from looplab.store import Store
        from looplab.store.postgres import PostgresBackend
        s = Store(PostgresBackend(sys.argv[1], schema=sys.argv[2]))
        with s.acceptance_lock():
            print("held", flush=True)
            time.sleep(120)
    """, pg_url, pg.backend.schema)
    try:
        assert proc.stdout.readline().strip() == "held"
        lock = pg.acceptance_lock()
        assert lock._try() is False
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with lock:  # the server ended the dead loop's session, and its lock with it
            assert pg.acceptance_lock()._try() is False
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_dashboard_and_progress_read_a_postgres_store_read_only(pg_url: str, tmp_path: Path) -> None:
    import shutil

    from test_ui_browser import Server, get

    from looplab.store.readonly import open_readonly
    from looplab.ui import create_app

    shutil.copytree(ROOT / "tests" / "fixtures" / "matmul", tmp_path / "matmul")
    toml = tmp_path / "matmul" / "experiment.toml"
    toml.write_text(toml.read_text().replace('name = "matmul"', 'name = "dashboard_pg"'))
    exp = load_experiment(tmp_path / "matmul")
    assert open_readonly(exp, pg_url) is None  # nothing recorded yet: the dashboard says so
    store = open_store(exp, pg_url)
    try:
        store.record_baseline(source="b", evaluation=_evaluation({"n96": 100.0}), metric=100.0)
        aid = store.begin_attempt(model="openai:gpt-4o-mini")
        store.finish_attempt(aid, outcome=Outcome.ACCEPTED, strategy="ikj over vectors",
                             evaluation=_evaluation({"n96": 50.0}), decision=_decision(Outcome.ACCEPTED, 2.0),
                             metric=50.0)
        ro = open_readonly(exp, pg_url)
        assert ro is not None and ro.fingerprint()[0] == aid
        with pytest.raises(ReadOnlyStoreError, match="opened read-only"):
            ro.set_meta("k", "v")  # the Store refuses writes first
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            ro.backend.execute("DELETE FROM attempts")  # and the session itself refuses them
        ro.close()
        with Server(create_app([exp.root], store=pg_url)) as server:
            code, _, body = get(f"{server.url}/e/dashboard_pg/status.json")
            assert code == 200, body
            status = json.loads(body)
            assert status["has_store"] and status["attempts"] == 1 and status["best"]["attempt"] == aid
            code, _, page = get(f"{server.url}/e/dashboard_pg/attempts/{aid}")
            assert code == 200 and "ikj over vectors" in page
        assert not (exp.root / ".looplab").exists()  # it never fell back to a SQLite file
    finally:
        store.backend.drop()
        store.close()


def test_a_server_that_drops_the_connection_is_a_store_error_not_a_traceback(pg: Store, pg_url: str) -> None:
    from looplab.store.faults import StoreError

    pg.begin_attempt(model="m")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        pid = pg.backend.execute("SELECT pg_backend_pid()").fetchone()[0]
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError, match="the PostgreSQL store failed.*fix:"):
        pg.begin_attempt(model="m")
    pg.backend.reconnect()  # for the fixture's clean-up


def test_a_migrated_old_postgres_store_reads_its_holdout_results_from_the_columns(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = schema_name("holdout migration")
    won, overfit = legacy_store(lambda: PostgresBackend(pg_url, schema=schema), monkeypatch)
    with Store(PostgresBackend(pg_url, schema=schema, read_only=True)) as ro:  # not migrated: details still say
        assert ro.schema_version() == 6
        assert_legacy_rows(ro, won, overfit)
    with pg_store(pg_url, schema) as s:
        try:
            assert s.schema_version() == len(MIGRATIONS)
            assert_legacy_rows(s, won, overfit)
            rows = s.backend.execute("SELECT id, holdout_ok, holdout_speedup, details FROM attempts ORDER BY id")
            assert [(r[0], r[1], r[2]) for r in rows] == [(0, None, None), (won, 1, 1.9), (overfit, 0, 0.8)]
            assert all("holdout" not in r[3] for r in rows)
        finally:
            s.backend.drop()


def test_a_read_only_postgres_store_refuses_writes_and_the_lock(pg: Store, pg_url: str) -> None:
    pg.begin_attempt(model="m")
    with Store(PostgresBackend(pg_url, schema=pg.backend.schema, read_only=True)) as ro:
        assert ro.in_flight() == [1] and ro.read_only
        for write in (lambda: ro.begin_attempt(model="m"), ro.acceptance_lock, ro.backend.drop):
            with pytest.raises(ReadOnlyStoreError, match="opened read-only.*fix:") as e:
                write()
            assert "s3cret" not in str(e.value) and "\n" not in str(e.value)
