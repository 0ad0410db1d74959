"""The store on real SQLite files: ids, reopen, migrations, other processes, kill -9, usage."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from looplab.records import CaseComparison, CaseResult, Decision, Evaluation, Outcome, Usage
from looplab.store import Store
from looplab.store.loops import SILENT_S
from looplab.store.schema import MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]


def _evaluation(medians: dict[str, float]) -> Evaluation:
    cases = {n: CaseResult(case=n, ok=True, samples=[m * 0.99, m, m * 1.01]) for n, m in medians.items()}
    return Evaluation(ok=True, cases=cases, seed=7, wall_s=1.5, log="built ok")


def _decision(outcome: Outcome, speedup: float) -> Decision:
    comp = CaseComparison("n96", speedup, speedup - 0.05, speedup + 0.05, 80.0, 80.0 * speedup, 3)
    return Decision(outcome=outcome, reason=f"x{speedup}", speedup=speedup, ci_low=speedup - 0.05,
                    ci_high=speedup + 0.05, cases={"n96": comp}, best_cases=["n96"], rounds=3)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "exp" / ".looplab" / "looplab.db"


def test_ids_start_after_baseline_and_continue_across_reopen(db: Path) -> None:
    with Store(db) as s:
        assert s.record_baseline(source="int f;", evaluation=_evaluation({"n96": 100.0}), metric=100.0) == 0
        assert s.begin_attempt(model="m") == 1
        assert s.begin_attempt(model="m", parent_id=0) == 2
    with Store(db) as s:
        assert s.begin_attempt(model="m") == 3
        assert [a.id for a in s.attempts()] == [0, 1, 2, 3]
        assert [a.id for a in s.attempts(newest_first=True, limit=2)] == [3, 2]
        assert s.attempt(2).parent_id == 0


def test_first_attempt_is_one_without_a_baseline(db: Path) -> None:
    with Store(db) as s:
        assert s.begin_attempt(model="m") == 1
        assert s.baseline() is None
        assert s.incumbent() is None


def test_finish_round_trips_records(db: Path) -> None:
    with Store(db) as s:
        aid = s.begin_attempt(model="openai:gpt", details={"prompt_chars": 10})
        assert s.attempt(aid).outcome is None
        s.finish_attempt(aid, outcome=Outcome.ACCEPTED, source="void f(){}", source_hash="abc",
                         strategy="tile 32x32", tags=["blocking"], evaluation=_evaluation({"n96": 80.0}),
                         decision=_decision(Outcome.ACCEPTED, 1.25), metric=80.0,
                         details={"next_ideas": ["unroll"]})
    with Store(db) as s:
        a = s.attempt(aid)
    assert a.outcome is Outcome.ACCEPTED
    assert a.reason == "x1.25"  # defaulted from the decision
    assert (a.speedup, a.ci_low, a.ci_high) == (1.25, 1.2, 1.3)
    assert a.cases["n96"].median == 80.0 and a.cases["n96"].ok
    assert a.decision["outcome"] == "accepted" and a.decision["cases"]["n96"]["rounds"] == 3
    assert a.details == {"prompt_chars": 10, "seed": 7, "wall_s": 1.5, "log": "built ok",
                         "next_ideas": ["unroll"]}
    assert a.tags == ["blocking"] and a.strategy == "tile 32x32" and a.metric == 80.0
    assert a.ended_at is not None and a.ended_at >= a.started_at


def test_finish_unknown_attempt_raises(db: Path) -> None:
    with Store(db) as s, pytest.raises(KeyError):
        s.finish_attempt(99, outcome=Outcome.SLOWER)


def test_queries_incumbent_winners_counts_hash(db: Path) -> None:
    with Store(db) as s:
        s.record_baseline(source="b", evaluation=_evaluation({"n96": 100.0}), metric=100.0)
        outcomes = [Outcome.COMPILE_ERROR, Outcome.ACCEPTED, Outcome.SLOWER, Outcome.SPECIALIST,
                    Outcome.ACCEPTED, Outcome.COMPILE_ERROR]
        for i, o in enumerate(outcomes):
            aid = s.begin_attempt(model="m")
            s.finish_attempt(aid, outcome=o, source_hash=f"h{i % 3}", metric=100.0 - i)
        s.begin_attempt(model="m")  # in flight
        assert s.incumbent().id == 5
        assert [w.id for w in s.winners()] == [2, 4, 5]
        assert s.outcome_counts() == {"accepted": 2, "compile_error": 2, "slower": 1, "specialist": 1}
        assert s.find_by_hash("h1").id == 2
        assert s.find_by_hash("nope") is None
        assert [a.id for a in s.attempts(outcomes=[Outcome.COMPILE_ERROR])] == [1, 6]
        assert s.in_flight() == [7]
        s.set_commit(5, "abc1234")
        assert s.attempt(5).commit == "abc1234"


def test_record_baseline_twice_replaces_in_place(db: Path) -> None:
    with Store(db) as s:
        s.record_baseline(source="b", evaluation=_evaluation({"n96": 100.0}), metric=100.0)
        s.begin_attempt(model="m", parent_id=0)
        s.record_baseline(source="b2", evaluation=_evaluation({"n96": 90.0}), metric=90.0)
        assert s.baseline().metric == 90.0 and s.baseline().source == "b2"
        assert len(s.attempts()) == 2


def test_migrations_idempotent_and_schema_plain(db: Path) -> None:
    with Store(db) as s:
        assert s.schema_version() == len(MIGRATIONS)
        s.set_meta("k", "v1")
        s.set_meta("k", "v2")
    with Store(db) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert s.get_meta("k") == "v2"
        assert s.get_meta("missing", "d") == "d"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"attempts", "calls", "meta", "schema_migrations"} <= tables
    assert con.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_foreign_keys_are_enforced(db: Path) -> None:
    with Store(db) as s, pytest.raises(sqlite3.IntegrityError):
        s.begin_attempt(model="m", parent_id=42)


def test_usage_sums_and_unknown_price(db: Path) -> None:
    with Store(db) as s:
        a1 = s.begin_attempt(model="m")
        s.record_call(attempt_id=a1, model="m", kind="propose", usage=Usage(100, 20, 10, 0.01), latency_s=1.0)
        s.record_call(attempt_id=a1, model="m", kind="reflect", usage=Usage(50, 5, 0, 0.002), latency_s=0.5)
        # A failed call with no tokens and no price does not make the cost unknown.
        s.record_call(attempt_id=a1, model="m", kind="propose", usage=Usage(0, 0, 0, None), latency_s=0.1,
                      error="HTTP 500")
        assert s.usage_total() == Usage(150, 25, 10, pytest.approx(0.012))
        assert s.attempt(a1).usage == Usage(150, 25, 10, pytest.approx(0.012))
        a2 = s.begin_attempt(model="local")
        s.record_call(attempt_id=a2, model="local", kind="propose", usage=Usage(7, 3, 0, None), latency_s=1.0)
        s.record_call(attempt_id=None, model="m", kind="summary", usage=Usage(1, 1, 0, 0.5), latency_s=1.0)
        total = s.usage_total()
        assert (total.prompt_tokens, total.completion_tokens, total.cost_usd) == (158, 29, None)
        assert s.attempt(a2).usage.cost_usd is None
        assert s.attempt(a1).usage.cost_usd == pytest.approx(0.012)  # unaffected by another attempt
        assert len(s.calls()) == 5 and s.calls(a1)[2]["error"] == "HTTP 500"


def test_empty_store_usage_is_zero(db: Path) -> None:
    with Store(db) as s:
        assert s.usage_total() == Usage(0, 0, 0, 0.0)
        assert s.outcome_counts() == {}


def _python(code: str, db: Path) -> subprocess.Popen:
    script = textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE, text=True, env=env)


def test_second_process_sees_writes_both_ways(db: Path) -> None:
    with Store(db) as s:
        s.record_baseline(source="b", evaluation=_evaluation({"n96": 100.0}), metric=100.0)
        proc = _python("""
            import sys
            from looplab.store import Store
            from looplab.records import Outcome
            s = Store(sys.argv[1])
            print(s.baseline().metric)
            a = s.begin_attempt(model="other-process")
            s.finish_attempt(a, outcome=Outcome.SLOWER, strategy="from afar")
            print(a)
        """, db)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert out.split() == ["100.0", "1"]
        assert s.attempt(1).strategy == "from afar"
        assert s.begin_attempt(model="m") == 2


def test_kill_9_leaves_in_flight_row_that_mark_interrupted_finds(db: Path) -> None:
    with Store(db) as s:
        s.record_baseline(source="b", evaluation=_evaluation({"n96": 100.0}), metric=100.0)
        done = s.begin_attempt(model="m")
        s.finish_attempt(done, outcome=Outcome.SLOWER)
    proc = _python("""
        import sys, time
        from looplab.store import Store
        s = Store(sys.argv[1])
        print(s.begin_attempt(model="doomed"), flush=True)
        time.sleep(60)
    """, db)
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Store(db) as s:
        assert s.attempt(int(line)).outcome is None
        assert s.mark_interrupted() == [2]
        assert s.attempt(2).outcome is Outcome.INTERRUPTED
        assert s.attempt(1).outcome is Outcome.SLOWER
        assert s.mark_interrupted() == []
        assert s.begin_attempt(model="m") == 3


def silent_loop_scenario(s: Store) -> None:
    """Loops on another host: the silent one is dead, the beating one and one that never beat are not."""
    ids = {}
    for token in ("1.silent", "1.alive", "1.never"):
        ids[token] = s.begin_attempt(model=token)
        s.backend.execute("UPDATE attempts SET owner_host = ?, owner_token = ? WHERE id = ?", ("other-host", token, ids[token]))
    for token, age in (("1.silent", SILENT_S + 60), ("1.alive", 5.0)):
        s.backend.execute(f"INSERT INTO loops (token, host, pid, beat_at) VALUES (?, ?, ?, {s.backend.now_sql} - ?)",
                   (token, "other-host", 1, age))
    assert s.silent_loops() == {"1.silent"}
    assert s.mark_interrupted() == [ids["1.silent"]]
    assert s.attempt(ids["1.alive"]).outcome is None and s.attempt(ids["1.never"]).outcome is None
    assert s.silent_loops() == set()  # the dead loop's last beat is forgotten with it
    s.heartbeat()
    s.heartbeat()  # a second beat updates the same row
    live = s.live_loops()  # the silent loop is not among them
    assert [(lp["host"], lp["pid"]) for lp in live] == sorted([("other-host", 1), (s.owner.host, s.owner.pid)])
    assert all(0 <= lp["last_beat_s"] < 60 for lp in live)
    assert [r[0] for r in s.backend.execute("SELECT token FROM loops ORDER BY token").fetchall()] == \
        sorted(["1.alive", s.owner.token])
    s.end_heartbeat()
    assert [r[0] for r in s.backend.execute("SELECT token FROM loops").fetchall()] == ["1.alive"]


def test_a_loop_on_another_host_that_stopped_beating_is_dead(db: Path) -> None:
    with Store(db) as s:
        silent_loop_scenario(s)


def test_upgrades_a_version_1_database(db: Path) -> None:
    # A store written before migration 2 existed: only migration 1 applied, one call recorded.
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.executescript(MIGRATIONS[0])
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    con.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    con.execute("INSERT INTO calls (model, kind, prompt_tokens, cost_usd, ts) VALUES ('m', 'propose', 5, 0.1, 0)")
    con.commit()
    con.close()
    with Store(db) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert s.usage_total().prompt_tokens == 5
        assert s.replies() == []  # the old call kept no text


def test_replies_keep_successful_reply_texts(db: Path) -> None:
    with Store(db) as s:
        a = s.begin_attempt(model="m")
        s.record_call(attempt_id=a, model="m", kind="propose", usage=Usage(10, 2, 0, None), latency_s=1,
                      response="first reply")
        s.record_call(attempt_id=a, model="m", kind="propose", usage=Usage(), latency_s=1, error="HTTP 429")
        s.record_call(attempt_id=None, model="m", kind="reflect", usage=Usage(1, 1), latency_s=1, response="r")
        s.record_call(attempt_id=None, model="m", kind="propose", usage=Usage(3, 4, 1, 0.5), latency_s=1,
                      response="second reply")
        assert s.replies() == [("first reply", Usage(10, 2, 0, None)), ("second reply", Usage(3, 4, 1, 0.5))]
        assert s.replies("reflect") == [("r", Usage(1, 1, 0, 0.0))]


def test_discard_attempt_only_in_flight(db: Path) -> None:
    with Store(db) as s:
        done = s.begin_attempt(model="m")
        s.finish_attempt(done, outcome=Outcome.SLOWER)
        gone = s.begin_attempt(model="m")
        s.record_call(attempt_id=gone, model="m", kind="propose", usage=Usage(7, 1, 0, 0.25), latency_s=1)
        assert s.discard_attempt(gone) is True
        assert s.attempt(gone) is None and s.in_flight() == []
        assert s.usage_total().prompt_tokens == 7  # the tokens were spent all the same
        assert s.discard_attempt(done) is False and s.attempt(done).outcome is Outcome.SLOWER
        assert s.discard_attempt(999) is False
        assert s.begin_attempt(model="m") == 2


def test_acceptance_lock_serialises_coroutines_without_blocking_the_event_loop(db: Path) -> None:
    import asyncio

    events: list[str] = []

    async def accept(name: str, store: Store) -> None:
        async with store.acceptance_lock():
            events.append(f"{name} in")
            await asyncio.sleep(0.05)
            events.append(f"{name} out")

    async def ticker() -> int:
        ticks = 0
        while len(events) < 6:
            ticks += 1
            await asyncio.sleep(0.005)
        return ticks

    async def main(s: Store, other: Store) -> int:
        *_, ticks = await asyncio.gather(accept("a", s), accept("b", s), accept("c", other), ticker())
        return ticks

    with Store(db) as s, Store(db) as other:  # two stores: the file lock, not only the in-process guard
        ticks = asyncio.run(main(s, other))
        assert len(events) == 6
        assert [e.split()[1] for e in events] == ["in", "out"] * 3  # never two holders at once
        assert ticks > 1  # the event loop kept running while the others waited


def test_acceptance_lock_is_released_when_its_holder_is_killed(db: Path) -> None:
    Store(db).close()
    proc = _python("""
        import sys, time
        from looplab.store import Store
        s = Store(sys.argv[1])
        with s.acceptance_lock():
            print("held", flush=True)
            time.sleep(120)
    """, db)
    try:
        assert proc.stdout.readline().strip() == "held"
        with Store(db) as s:
            lock = s.acceptance_lock()
            assert lock._try() is False  # another process holds it
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            with lock:  # the kernel dropped the dead holder's lock
                assert s.acceptance_lock()._try() is False  # and now this store holds it
    finally:
        proc.kill()
        proc.wait(timeout=30)
