"""Real `looplab run` processes on the matmul fixture, stopped or starved at chosen moments, and the
check that whatever happened the experiment is consistent: the store is the truth and the files agree."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from eval_helpers import FAST_MATMUL

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"
NAIVE = (FIXTURE / "naive.c").read_text()
GIT_ID = ("-c", "user.name=t", "-c", "user.email=t@t")


def reply(strategy: str, code: str) -> str:
    return f"Strategy: {strategy}\nTags: test\n\n```c\n{code}```\n"


FAST_REPLY = reply("ikj over 8-wide vectors", FAST_MATMUL)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def make_repo(tmp_path: Path) -> Path:
    """The matmul fixture inside a fresh git repository; returns the experiment folder."""
    root = tmp_path / "work"
    shutil.copytree(FIXTURE, root / "matmul")
    git(root, "init", "-q")
    git(root, *GIT_ID, "add", ".")
    git(root, *GIT_ID, "commit", "-qm", "initial")
    return root / "matmul"


def make_copy(tmp_path: Path) -> Path:
    """The matmul fixture, outside git."""
    dest = tmp_path / "matmul"
    shutil.copytree(FIXTURE, dest)
    return dest


def argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "looplab.cli", *args]


def looplab(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv(*args), capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout)


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`looplab ARGS` in its own process group (so a test can kill it with everything it started)."""
    return subprocess.Popen(argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def write_replies(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"content": t}) + "\n" for t in texts))
    return path


def waiting_model(tmp_path: Path, text: str = "no code, sorry") -> tuple[str, Path, Path]:
    """A `command:` model that touches STARTED, waits until GO exists, then replies `text`.

    Returns (model spec, started path, go path)."""
    started, go = tmp_path / "model-started", tmp_path / "model-go"
    script = tmp_path / "model.py"
    script.write_text(textwrap.dedent(f"""\
        import pathlib, sys, time
        sys.stdin.read()
        pathlib.Path({str(started)!r}).touch()
        deadline = time.monotonic() + 300  # never outlive the test that started it by long
        while not pathlib.Path({str(go)!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        sys.stdout.write({text!r})
        """))
    return f"command:{sys.executable} {script}", started, go


def wait_for(predicate: Callable[[], object], timeout: float = 120, what: str = "it",
             proc: subprocess.Popen | None = None) -> None:
    """Poll predicate; fail with the process's output if proc ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"looplab exited {proc.returncode} before {what}:\n{out}\n{err}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def private_timing_lock(tmp_path: Path, monkeypatch) -> None:
    """Timing runs of this test's loops queue behind each other only, not behind other tests'."""
    monkeypatch.setenv("LOOPLAB_TIMING_LOCK", str(tmp_path / "timing.lock"))


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def one_line(stderr: str) -> str:
    """The single line a user error prints (asserting there is exactly one, and no traceback)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def assert_consistent(exp: Path, db: Path | None = None) -> None:
    """After any sequence of kills and restarts, the files agree with the store.

    Every git commit that says "new best"/"specialist" matches an accepted/specialist row with that
    commit; every winners/ file has a row; incumbent.<ext> holds the store's incumbent; every
    attempt folder has result.json; no acceptance is left half done and no index.lock is left.
    """
    db = db or exp / ".looplab" / "looplab.db"
    winners = {r[0]: (r[1], r[2], r[3]) for r in rows(
        db, "SELECT id, outcome, commit_hash, source FROM attempts WHERE outcome IN ('accepted', 'specialist')")}
    assert rows(db, "SELECT id FROM attempts WHERE accepting IS NOT NULL") == []
    assert rows(db, "SELECT id FROM attempts WHERE outcome IS NULL") == []
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    inside_git = subprocess.run(["git", "-C", str(exp), "rev-parse"], capture_output=True).returncode == 0
    if inside_git:
        log = git(exp, "log", "--format=%h %s", "--", ".")
        for line in log.splitlines():
            m = re.match(rf"(\w+) looplab: {exp.name} attempt (\d+): (new best|specialist)\b", line)
            if m:
                commit, attempt, kind = m.group(1), int(m.group(2)), m.group(3)
                assert attempt in winners, f"commit {line!r} has no accepted/specialist row"
                outcome, recorded, _ = winners[attempt]
                assert outcome == ("accepted" if kind == "new best" else "specialist"), line
                assert recorded and (recorded.startswith(commit) or commit.startswith(recorded)), (line, recorded)
        lock = git(exp, "rev-parse", "--git-path", "index.lock").strip()
        assert not (exp / lock).exists(), "a stale index.lock was left"
    commits = {c for _, c, _ in winners.values()}
    for f in (exp / "winners").glob("*") if (exp / "winners").is_dir() else []:
        assert f.stem in commits, f"winners/{f.name} has no row"
    incumbent = rows(db, "SELECT id, source FROM attempts WHERE outcome = 'accepted' "
                         "ORDER BY ended_at DESC, id DESC LIMIT 1") or rows(db, "SELECT id, source FROM attempts "
                                                                            "WHERE id = 0")
    live = exp / "incumbent.c"
    if incumbent and (incumbent[0][0] != 0 or live.exists()):
        assert live.read_text() == incumbent[0][1], "incumbent.c differs from the store's incumbent"
    for run in (exp / "runs").iterdir() if (exp / "runs").is_dir() else []:
        assert (run / "result.json").is_file(), f"{run.name} has no result.json"
