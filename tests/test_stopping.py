"""Every way of stopping a real `looplab run`: SIGTERM and SIGHUP like Ctrl-C, a double Ctrl-C, a kill -9,
errors that end the run, and the exit code each one gives."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import pytest
from fault_helpers import (
    assert_consistent,
    looplab,
    make_copy,
    private_timing_lock,
    rows,
    start,
    wait_for,
    waiting_model,
)


@pytest.fixture(autouse=True)
def _timing_lock(tmp_path, monkeypatch):
    private_timing_lock(tmp_path, monkeypatch)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _model_pids(script_marker: str) -> list[int]:
    """Processes running the waiting model (so a test can tell they did not outlive the run)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if script_marker.encode() in f.read() and _alive(int(pid)):
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_mid_attempt_records_it_interrupted_and_exits_128_plus_n(tmp_path, signum, code):
    exp = make_copy(tmp_path)
    db = exp / ".looplab" / "looplab.db"
    model, started, _go = waiting_model(tmp_path)
    proc = start("run", str(exp), "--model", model, "--loop", "3", "--workers", "2")
    wait_for(started.exists, what="the model call", proc=proc)
    wait_for(lambda: len(rows(db, "SELECT id FROM attempts WHERE outcome IS NULL")) == 2, what="two attempts",
             proc=proc)
    assert _model_pids(str(tmp_path / "model.py"))
    sent = time.monotonic()
    os.kill(proc.pid, signum)  # to looplab alone, as systemd and `docker stop` do
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out + err
    assert time.monotonic() - sent < 10
    name = signal.Signals(signum).name
    assert [ln for ln in err.splitlines() if ln.strip()] == \
        [f"looplab: stopped by {name}; the attempts in flight are recorded as interrupted"]
    assert rows(db, "SELECT outcome, reason FROM attempts WHERE id > 0 ORDER BY id") == \
        [("interrupted", f"stopped by {name}")] * 2
    assert rows(db, "SELECT COUNT(*) FROM loops") == [(0,)]  # its heartbeat row is gone
    for attempt in (1, 2):
        assert json.loads((exp / "runs" / f"{attempt:04d}" / "result.json").read_text())["outcome"] == "interrupted"
    assert not _model_pids(str(tmp_path / "model.py"))  # nothing it started outlives it
    assert json.loads(looplab("status", str(exp), "--json").stdout)["loops"] == []
    assert_consistent(exp)


@pytest.mark.slow
def test_a_double_ctrl_c_never_prints_a_traceback(tmp_path):
    for round_, gap in enumerate([0.0, 0.02, 0.02, 0.1, 0.3]):  # during the stop, or as it exits
        exp = make_copy(tmp_path / f"round{round_}")
        model, started, _go = waiting_model(tmp_path / f"round{round_}")
        proc = start("run", str(exp), "--model", model, "--loop", "2")
        wait_for(started.exists, what="the model call", proc=proc)
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(gap)
        with contextlib.suppress(ProcessLookupError):  # it may be gone already
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert len([ln for ln in err.splitlines() if ln.strip()]) <= 2, err
        assert rows(exp / ".looplab" / "looplab.db", "SELECT outcome FROM attempts WHERE id = 1") == [("interrupted",)]


@pytest.mark.slow
def test_status_never_shows_a_dead_local_loop_as_running(tmp_path):
    exp = make_copy(tmp_path)
    model, started, go = waiting_model(tmp_path)
    proc = start("run", str(exp), "--model", model, "--loop", "1")
    wait_for(started.exists, what="the model call", proc=proc)
    assert [lp["pid"] for lp in json.loads(looplab("status", str(exp), "--json").stdout)["loops"]] == [proc.pid]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    go.touch()  # the orphaned model command (its own process group) may end now
    # Its last beat is still in the store (less than 10 minutes old), but its process is gone.
    assert rows(exp / ".looplab" / "looplab.db", "SELECT pid FROM loops") == [(proc.pid,)]
    status = looplab("status", str(exp), "--json")
    assert json.loads(status.stdout)["loops"] == []
    assert "running now" not in looplab("status", str(exp)).stdout
