"""Acceptance is a recorded transaction: whatever stops a run, the experiment's files agree with the store.

Real git repositories (with real hooks), real SQLite files, real `looplab run` processes killed with
SIGKILL at chosen moments, and the recovery a restarted run performs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from eval_helpers import FAST_MATMUL
from fault_helpers import (
    FAST_REPLY,
    GIT_ID,
    NAIVE,
    assert_consistent,
    git,
    looplab,
    make_repo,
    one_line,
    private_timing_lock,
    reply,
    rows,
    start,
    wait_for,
    write_replies,
)

from looplab.archive import keeping
from looplab.archive import winners as archive
from looplab.archive.git_lock import live_git_in
from looplab.config import load_experiment
from looplab.records import Evaluation, Outcome
from looplab.store import Store


@pytest.fixture(autouse=True)
def _timing_lock(tmp_path, monkeypatch):
    private_timing_lock(tmp_path, monkeypatch)


VARIANT_A = NAIVE.replace("float acc = 0.0f;", "float acc = 0.0f * 2.0f;")
VARIANT_B = NAIVE.replace("float acc = 0.0f;", "float acc = 0.0f * 3.0f;")
VARIANT_C = NAIVE.replace("float acc = 0.0f;", "float acc = 0.0f * 4.0f;")


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def record_winner(store: Store, exp, source: str, outcome: Outcome = Outcome.ACCEPTED) -> int:
    """A winner as run_attempt records it (step 1 of the transaction): the row, with its acceptance key."""
    attempt = store.begin_attempt(model="m")
    store.finish_attempt(attempt, outcome=outcome, source=source, strategy=f"variant {attempt}",
                         details={"archived_in": keeping.checkout(exp)}, accepting=keeping.new_key())
    return attempt


def orphan(store_path: Path, attempt: int) -> None:
    """Make a row look like it belongs to a loop that died (a kill -9)."""
    with Store(store_path) as s:
        s.backend.execute("UPDATE attempts SET owner_pid = ?, owner_token = ? WHERE id = ?", (dead_pid(), "1.dead", attempt))


def new_store(exp) -> Store:
    store = Store(exp.store_path)
    if store.baseline() is None:
        store.record_baseline(source=NAIVE, evaluation=Evaluation(ok=True), metric=100.0)
    return store


def test_a_specialist_is_archived_and_committed_but_never_touches_the_incumbent_file(tmp_path):
    exp = load_experiment(make_repo(tmp_path))
    with new_store(exp) as store:
        best = keeping.complete(store, exp, store.attempt(record_winner(store, exp, VARIANT_A)))
        spec = keeping.complete(store, exp, store.attempt(record_winner(store, exp, VARIANT_B, Outcome.SPECIALIST)))
    assert (exp.root / "incumbent.c").read_text() == VARIANT_A
    assert (exp.winners_dir / f"{spec.commit}.c").read_text() == VARIANT_B
    assert (exp.winners_dir / f"{best.commit}.c").read_text() == VARIANT_A
    subjects = git(exp.root, "log", "--format=%s").splitlines()
    assert any("attempt 2: specialist" in s for s in subjects) and any("attempt 1: new best" in s for s in subjects)
    assert "incumbent.c" not in git(exp.root, "show", "--name-only", "--format=", spec.commit)
    assert "Looplab-Acceptance: " in git(exp.root, "show", "-s", "--format=%b", best.commit)
    assert best.accepting is None and spec.accepting is None  # both acceptances are done
    assert_consistent(exp.root)


def test_a_restart_finishes_half_done_acceptances_and_repairs_the_files(tmp_path):
    exp = load_experiment(make_repo(tmp_path))
    with new_store(exp) as store:
        keeping.complete(store, exp, store.attempt(record_winner(store, exp, VARIANT_A)))
        # Killed after the store recorded the decision, before any file was written or committed.
        pending = record_winner(store, exp, VARIANT_B)
        # Killed after the commit landed, before the store marked the acceptance done.
        committed = record_winner(store, exp, VARIANT_C)
        row = store.attempt(committed)
        archive.archive_winner(exp, source=VARIANT_C, attempt_id=committed, message=keeping.commit_message(exp, row),
                               key=row.accepting)
        # An attempt whose result.json a full disk or a kill never let be written.
        slower = store.begin_attempt(model="m")
        store.finish_attempt(slower, outcome=Outcome.SLOWER, source=NAIVE)
    (exp.runs_dir / f"{slower:04d}").mkdir(parents=True)
    for attempt in (pending, committed):
        orphan(exp.store_path, attempt)
    with Store(exp.store_path) as s:
        first_commit = s.attempt(1).commit
    (exp.winners_dir / f"{first_commit}.c").unlink()  # someone cleaned winners/
    (exp.root / "incumbent.c").write_text("/* edited by hand */\n")
    # A git of looplab's killed mid-commit: its note says so, and index.lock is left.
    lock = exp.root.parent / ".git" / "index.lock"
    lock.write_text("")
    (exp.root / ".looplab" / "git.json").write_text(json.dumps(
        {"host": os.uname().nodename, "pid": dead_pid(), "token": "1.git", "started": lock.stat().st_mtime - 1}))

    notes: list[str] = []
    with Store(exp.store_path) as store:
        asyncio.run(keeping.recover(store, exp, notes.append))
        incumbent = store.incumbent()
    text = "\n".join(notes)
    assert "removed" in text and "index.lock" in text
    assert f"attempt {pending}: finished its acceptance" in text and f"attempt {committed}: finished" in text
    assert "winners/" in text
    assert_consistent(exp.root)
    subjects = git(exp.root, "log", "--format=%s").splitlines()
    for attempt in (1, pending, committed):  # each exactly once: the one already made is found, not repeated
        assert sum(f"attempt {attempt}: new best" in s for s in subjects) == 1, subjects
    assert incumbent.id == committed and (exp.root / "incumbent.c").read_text() == VARIANT_C
    assert json.loads((exp.runs_dir / f"{slower:04d}" / "result.json").read_text())["outcome"] == "slower"


def test_a_lock_held_by_a_live_git_is_never_removed(tmp_path):
    exp = load_experiment(make_repo(tmp_path))
    lock = exp.root.parent / ".git" / "index.lock"
    (exp.root / "notes.txt").write_text("work in progress\n")
    git(exp.root, "add", "notes.txt")
    # A person's `git commit` waiting in an editor holds the index lock all along.
    editor = subprocess.Popen(["git", "-C", str(exp.root), "-c", "core.editor=sleep 30;:", *GIT_ID, "commit", "notes.txt"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lock.exists, timeout=10, what="git to take its lock")
        (exp.root / ".looplab").mkdir()
        (exp.root / ".looplab" / "git.json").write_text(json.dumps(  # a git of looplab's died here, too
            {"host": os.uname().nodename, "pid": dead_pid(), "token": "1.git", "started": lock.stat().st_mtime - 1}))
        assert live_git_in(exp.root) == [editor.pid]
        assert archive.recover_index_lock(exp.root) is None
        assert lock.exists()
    finally:
        os.killpg(editor.pid, signal.SIGKILL)
        editor.wait()


def _fast_variant(k: int) -> str:
    """As fast as FAST_MATMUL, and a different program (a literal of its own), so it is judged, not a duplicate."""
    return FAST_MATMUL.replace("ci[j] = 0.0f;", f"ci[j] = 0.0f * {k}.0f;")


def _winning_replies(path: Path) -> Path:
    """Three clearly faster programs: on a loaded machine one may come out 'within noise'; one wins."""
    return write_replies(path, [FAST_REPLY, *(reply(f"fast {k}", _fast_variant(k)) for k in (2, 3))])


@pytest.mark.slow
@pytest.mark.parametrize("victims", ["looplab", "looplab-and-git"])
def test_kill_9_while_git_commits_the_winner_then_restart(tmp_path, victims):
    exp = make_repo(tmp_path)
    repo, db = exp.parent, exp / ".looplab" / "looplab.db"
    in_commit, release = tmp_path / "in-commit", tmp_path / "release"
    hook = repo / ".git" / "hooks" / "pre-commit"  # holds the commit (and git's index.lock) until released
    hook.write_text(f"#!/bin/sh\ntouch {in_commit}\nwhile [ ! -e {release} ]; do sleep 0.05; done\n")
    hook.chmod(0o755)
    proc = start("run", str(exp), "--model", f"replay:{_winning_replies(tmp_path / 'r.jsonl')}", "--loop", "3")
    wait_for(in_commit.exists, timeout=300, what="the winner's commit", proc=proc)
    # The store holds the decision and the source before git is asked for anything.
    [(won, outcome, source)] = rows(db, "SELECT id, outcome, source FROM attempts WHERE accepting IS NOT NULL")
    assert outcome == "accepted" and source
    if victims == "looplab":
        os.kill(proc.pid, signal.SIGKILL)  # git lives on in its hook, and commits once released
    else:
        os.killpg(proc.pid, signal.SIGKILL)  # git dies too: its index.lock stays behind
    proc.wait()
    assert (repo / ".git" / "index.lock").exists()
    release.touch()

    more = write_replies(tmp_path / "more.jsonl", ["no code this time"])
    result = looplab("run", str(exp), "--model", f"replay:{more}", "--loop", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"attempt {won}: finished its acceptance as accepted" in result.stdout
    if victims == "looplab-and-git":
        assert "removed" in result.stdout and "index.lock" in result.stdout
    assert_consistent(exp)
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert sum(f"attempt {won}: new best" in s for s in subjects) == 1
    assert (exp / "incumbent.c").read_text() == source
    assert rows(db, "SELECT outcome FROM attempts WHERE id = ?", (won,)) == [("accepted",)]


@pytest.mark.slow
def test_a_commit_a_hook_refuses_keeps_the_decision_and_the_next_run_commits_it(tmp_path):
    exp = make_repo(tmp_path)
    repo, db = exp.parent, exp / ".looplab" / "looplab.db"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'commits are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = looplab("run", str(exp), "--model", f"replay:{_winning_replies(tmp_path / 'r.jsonl')}", "--loop", "3")
    assert result.returncode == 2, result.stdout + result.stderr
    [(won, outcome)] = rows(db, "SELECT id, outcome FROM attempts WHERE accepting IS NOT NULL")
    line = one_line(result.stderr)
    assert "commits are frozen today" in line and f"attempt {won} stays accepted" in line, line
    assert outcome == "accepted"
    hook.unlink()  # the person fixes what the hook complained about
    more = write_replies(tmp_path / "more.jsonl", ["no code"])
    result = looplab("run", str(exp), "--model", f"replay:{more}", "--loop", "1")
    assert result.returncode == 0 and f"attempt {won}: finished its acceptance" in result.stdout, result.stderr
    assert_consistent(exp)
    assert sum(f"attempt {won}: new best" in s for s in git(repo, "log", "--format=%s").splitlines()) == 1


def _slow_variant(k: int) -> str:
    return NAIVE.replace("float acc = 0.0f;", f"float acc = 0.0f * {k + 10}.0f;")


@pytest.mark.slow
def test_kills_at_random_moments_never_leave_the_experiment_inconsistent(tmp_path):
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    exp = make_repo(tmp_path)
    hook = exp.parent / ".git" / "hooks" / "pre-commit"  # a slow hook: kills often land inside a commit
    hook.write_text("#!/bin/sh\nsleep 1.5\n")
    hook.chmod(0o755)
    clean = write_replies(tmp_path / "clean.jsonl", ["no code"])
    for cycle in range(5):
        # New programs every cycle, so every run builds, validates, times and judges (no duplicates).
        replies = write_replies(tmp_path / f"r{cycle}.jsonl", [
            *([FAST_REPLY] if cycle == 0 else []), reply(f"fast {cycle}", _fast_variant(cycle)),
            reply(f"4-wide {cycle}", _fast_variant(cycle).replace("vector_size(32)", "vector_size(16)")
                  .replace("v8", "v4").replace("j + 8 <= n; j += 8", "j + 4 <= n; j += 4")),
            "no code", reply(f"slow {cycle}", _slow_variant(cycle))])
        proc = start("run", str(exp), "--model", f"replay:{replies}", "--loop", "4", "--workers", "2")
        time.sleep(rng.uniform(1.0, 18.0))  # the baseline, builds, timing, acceptance, the commit
        if cycle % 2:
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        result = looplab("run", str(exp), "--model", f"replay:{clean}", "--loop", "1")
        assert result.returncode == 0, f"seed {seed}, cycle {cycle}:\n{result.stdout}\n{result.stderr}"
        try:
            assert_consistent(exp)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, cycle {cycle}: {e}") from None
