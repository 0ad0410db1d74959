"""A misbehaving provider, seen from a real `looplab run` against a real HTTP server on 127.0.0.1: a 401
stops the run at once, a server that never answers costs --model-timeout per attempt (retries
included) and a run that keeps failing exits non-zero, unreadable replies are retried model errors."""

from __future__ import annotations

import time

import pytest
from fault_helpers import looplab, make_copy, one_line, private_timing_lock, rows
from wire_servers import OpenAIServer


@pytest.fixture(autouse=True)
def _timing_lock(tmp_path, monkeypatch):
    private_timing_lock(tmp_path, monkeypatch)


def run(exp, server, *args: str, key: str = "sk-test"):
    return looplab("run", str(exp), "--model", "openai:test-model", "--base-url", server.url, *args,
                   env={"OPENAI_API_KEY": key})


@pytest.mark.parametrize("status", [401, 403])
def test_an_authentication_or_permission_error_stops_the_run_at_once(tmp_path, status):
    exp = make_copy(tmp_path)
    with OpenAIServer(["never"], fail_first=[status] * 10) as server:
        result = run(exp, server, "--loop", "5")
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line(result.stderr)
    assert ("rejected the API key" if status == 401 else "refused access") in line and "fix:" in line, line
    assert len(server.requests) == 1  # neither retried nor asked again by the next attempts
    db = exp / ".looplab" / "looplab.db"
    assert rows(db, "SELECT id, outcome FROM attempts WHERE id > 0") == [(1, "model_error")]
    assert rows(db, "SELECT attempt_id, error IS NOT NULL FROM calls") == [(1, 1)]
    assert rows(db, "SELECT COUNT(*) FROM loops") == [(0,)]


@pytest.mark.slow
def test_a_server_that_never_answers_costs_the_timeout_per_attempt_and_the_run_exits_3(tmp_path):
    exp = make_copy(tmp_path)
    assert looplab("run", str(exp), "--model", "command:true", "--loop", "1").returncode == 0  # the baseline
    with OpenAIServer(["never"], delay_s=3600) as server:
        started = time.monotonic()
        result = run(exp, server, "--loop", "10", "--model-timeout", "1")
        took = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert "5 attempts in a row failed outside the candidate" in result.stdout
    assert took < 20  # 5 attempts of 1 s, not 5 tries of the timeout each
    reasons = rows(exp / ".looplab" / "looplab.db", "SELECT outcome, reason FROM attempts WHERE id > 1")
    assert len(reasons) == 5 and all(o == "model_error" and "1s model timeout" in r for o, r in reasons)


def test_retries_are_visible_and_bounded_by_the_model_timeout(tmp_path):
    exp = make_copy(tmp_path)
    with OpenAIServer(["never"], fail_first=[503] * 1000) as server:
        started = time.monotonic()
        result = run(exp, server, "--loop", "1", "--model-timeout", "2.5")
        took = time.monotonic() - started
    assert result.returncode == 0, result.stderr  # one failed attempt is not a run that kept failing
    assert "answered 503" in result.stdout and "retry 1 of 4" in result.stdout and "left of the 2.5s" in result.stdout
    assert took < 15 and 2 <= len(server.requests) <= 4


def test_replies_that_cannot_be_read_are_retried_model_errors_with_their_calls_recorded(tmp_path):
    exp = make_copy(tmp_path)
    garbage = [b'{"id": "x", "choices": [{"mess', b"\xff\xfe\x00garbage"] * 50
    with OpenAIServer(["never"], fail_first=garbage) as server:
        result = run(exp, server, "--loop", "1", "--model-timeout", "2")
    assert result.returncode == 0, result.stderr
    assert len(server.requests) >= 2  # retried like a 5xx
    db = exp / ".looplab" / "looplab.db"
    [(outcome, reason)] = rows(db, "SELECT outcome, reason FROM attempts WHERE id = 1")
    assert outcome == "model_error" and "could not be read" in reason
    assert rows(db, "SELECT attempt_id, error IS NOT NULL FROM calls") == [(1, 1)]
