"""Store and disk faults end a real `looplab run` with one line naming the file and the fix, exit 2:
a truncated or garbage store, a store locked by another process (at start and mid-run), a read-only
folder, and a tmpfs that fills up. Whatever the store still takes is recorded; the next run recovers."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from fault_helpers import (
    assert_consistent,
    looplab,
    make_copy,
    one_line,
    private_timing_lock,
    rows,
    start,
    wait_for,
    waiting_model,
    write_replies,
)

ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True)
def _timing_lock(tmp_path, monkeypatch):
    private_timing_lock(tmp_path, monkeypatch)


def ran_once(tmp_path: Path) -> Path:
    """An experiment with a store holding the baseline and one attempt."""
    exp = make_copy(tmp_path)
    result = looplab("run", str(exp), "--model", f"replay:{write_replies(tmp_path / 'r.jsonl', ['no code'])}")
    assert result.returncode == 0, result.stderr
    return exp


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_store_is_one_line_naming_the_file_and_how_to_recover(tmp_path, damage):
    exp = ran_once(tmp_path)
    db = exp / ".looplab" / "looplab.db"
    data = db.read_bytes()
    assert len(data) > 4 * 4096
    db.write_bytes(data[:4096] if damage == "truncated" else os.urandom(len(data)))
    for command in (["run", str(exp), "--model", f"replay:{write_replies(tmp_path / 'more.jsonl', ['no code'])}"], ["status", str(exp)]):
        result = looplab(*command)
        line = one_line(result.stderr)
        assert result.returncode == 2, result.stderr
        assert str(db) in line and "damaged" in line and ".recover" in line and "winners/" in line, line


@contextlib.contextmanager
def held_write_lock(db: Path):
    """Another process's open write transaction (a sqlite3 shell left in BEGIN IMMEDIATE)."""
    holder = subprocess.Popen(["sqlite3", str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "locked"
    try:
        yield holder.pid
    finally:
        holder.stdin.write("ROLLBACK;\n.quit\n")
        holder.stdin.flush()
        holder.wait(timeout=10)


def test_a_store_locked_at_start_names_who_holds_it(tmp_path):
    exp = ran_once(tmp_path)
    db = exp / ".looplab" / "looplab.db"
    with held_write_lock(db) as pid:
        started = time.monotonic()
        result = looplab("run", str(exp), "--model", f"replay:{write_replies(tmp_path / 'more.jsonl', ['no code'])}",
                         env={"LOOPLAB_STORE_BUSY_S": "1"})
        took = time.monotonic() - started
    line = one_line(result.stderr)
    assert result.returncode == 2 and took < 20
    assert str(db) in line and "locked" in line and f"pid {pid} (sqlite3" in line and "fix:" in line, line


def test_status_reads_a_store_another_process_holds_locked_without_waiting(tmp_path):
    exp = ran_once(tmp_path)
    with held_write_lock(exp / ".looplab" / "looplab.db"):
        started = time.monotonic()
        result = looplab("status", str(exp), "--json", env={"LOOPLAB_STORE_BUSY_S": "30"})
        took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["attempts"] == 1 and took < 15  # not the 30 s busy wait


@pytest.mark.slow
def test_a_store_locked_mid_run_stops_it_with_one_line_and_the_next_run_recovers(tmp_path):
    exp = ran_once(tmp_path)
    db = exp / ".looplab" / "looplab.db"
    model, started, go = waiting_model(tmp_path)
    proc = start("run", str(exp), "--model", model, "--loop", "2", env={"LOOPLAB_STORE_BUSY_S": "1"})
    wait_for(started.exists, what="the model call", proc=proc)
    with held_write_lock(db) as pid:
        go.touch()  # the reply arrives while the store is locked: recording it waits, then gives up
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    line = one_line(err)
    assert "locked" in line and f"pid {pid}" in line
    result = looplab("run", str(exp), "--model", f"replay:{write_replies(tmp_path / 'r2.jsonl', ['no code'])}")
    assert result.returncode == 0, result.stderr
    assert rows(db, "SELECT outcome FROM attempts WHERE id = 2") == [("interrupted",)]
    assert_consistent(exp)


@contextlib.contextmanager
def read_only(path: Path):
    """path made read-only for this process: a read-only bind mount as root (root ignores modes), else chmod."""
    if not ROOT:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_a_read_only_folder_is_one_line(tmp_path):
    exp = ran_once(tmp_path)
    with read_only(exp):
        result = looplab("run", str(exp), "--model", f"replay:{write_replies(tmp_path / 'more.jsonl', ['no code'])}")
    line = one_line(result.stderr)
    assert result.returncode == 2 and "cannot be written" in line and "writable" in line, line


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "24m"):
    where.mkdir(parents=True)
    if not ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                  capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the file system is full."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
@pytest.mark.parametrize("store_on", ["another-disk", "the-full-disk"])
def test_a_disk_that_fills_up_mid_attempt_is_one_line_and_the_next_run_recovers(tmp_path, store_on):
    with small_tmpfs(tmp_path / "disk") as disk:
        exp = make_copy(disk)
        db = tmp_path / "store" / "looplab.db" if store_on == "another-disk" else exp / ".looplab" / "looplab.db"
        store = ["--store", f"sqlite:///{db}"]
        model, started, go = waiting_model(tmp_path)
        proc = start("run", str(exp), "--model", model, "--loop", "2", *store)
        wait_for(started.exists, what="the model call", proc=proc)
        filler = fill(disk)
        go.touch()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, out + err
        line = one_line(err)
        assert "no space left" in line and "fix: free space" in line, line
        if store_on == "another-disk":  # the store still takes writes: the attempt is recorded there
            assert rows(db, "SELECT outcome FROM attempts WHERE id = 1")[0][0] == "infra_error"
            assert "no space left" in rows(db, "SELECT reason FROM attempts WHERE id = 1")[0][0]
        filler.unlink()
        result = looplab("run", str(exp), "--model", f"replay:{write_replies(tmp_path / 'r.jsonl', ['no code'])}",
                         *store)
        assert result.returncode == 0, result.stdout + result.stderr
        assert rows(db, "SELECT outcome FROM attempts WHERE id = 1")[0][0] in ("infra_error", "interrupted")
        assert json.loads((exp / "runs" / "0001" / "result.json").read_text())["attempt"] == 1
        assert not list(exp.glob("*.tmp")), "half-written temporaries were left behind"
        assert_consistent(exp, db)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
