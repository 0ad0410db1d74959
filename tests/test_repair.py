"""Repair turns and duplicates that teach, seen from a real `looplab run` against a real OpenAI-wire HTTP
server on 127.0.0.1 that answers from a script and records every request: a candidate that fails to
compile goes back to the model with gcc's error in the same conversation, and the fix is judged."""

from __future__ import annotations

import json
import sqlite3

import pytest
from eval_helpers import FAST_MATMUL
from fault_helpers import NAIVE, looplab, make_repo, private_timing_lock, reply, rows
from wire_servers import OpenAIServer

BROKEN = FAST_MATMUL.replace("const float aik = a[(long)i * n + k];", "const float aik = a[(long)i * n + k]")
WRONG = NAIVE.replace("c[i * n + j] = acc;", "c[i * n + j] = acc * 0.5f;")
HOLDOUT = "n61"  # the fixture's hidden case
JUDGED = {"accepted", "specialist", "slower"}  # built, validated and timed (a loaded machine may not confirm a win)


@pytest.fixture(autouse=True)
def _timing_lock(tmp_path, monkeypatch):
    private_timing_lock(tmp_path, monkeypatch)


def run(exp, server, *args: str):
    return looplab("run", str(exp), "--model", "openai:test-model", "--base-url", server.url, *args,
                   env={"OPENAI_API_KEY": "sk-test"})


def status(exp):
    return json.loads(looplab("status", str(exp), "--json").stdout)


def sent(server) -> list[list[dict]]:
    return [r.body["messages"] for r in server.requests if r.method == "POST"]


def test_a_compile_error_is_repaired_in_a_second_turn_of_the_same_attempt(tmp_path):
    exp = make_repo(tmp_path)
    with OpenAIServer([reply("8-wide vectors", BROKEN), reply("8-wide vectors, semicolon fixed", FAST_MATMUL)]) as server:
        result = run(exp, server, "--loop", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    (outcome, n), = status(exp)["outcomes"].items()
    assert n == 1 and outcome in JUDGED  # one attempt: the fixed candidate was judged

    first, second = sent(server)
    assert [m["role"] for m in second] == [m["role"] for m in first] + ["assistant", "user"]
    assert second[:len(first)] == first and second[-2]["content"] == reply("8-wide vectors", BROKEN)
    ask = second[-1]["content"]
    assert "did not compile (compile_error)" in ask and "expected" in ask and "Repair 1 of 1" in ask

    db = exp / ".looplab" / "looplab.db"
    calls = rows(db, "SELECT attempt_id, kind, completion_tokens > 0, error FROM calls ORDER BY id")
    assert calls == [(1, "propose", 1, None), (1, "repair", 1, None)]
    result_json = json.loads((exp / "runs" / "0001" / "result.json").read_text())
    assert [t["outcome"] for t in result_json["details"]["turns"]] == ["compile_error", outcome]
    trail = exp / "runs" / "0001"
    assert (trail / "candidate.c").read_text() == BROKEN and (trail / "candidate-2.c").read_text() == FAST_MATMUL
    assert (trail / "response-2.md").is_file() and (trail / "repair-2.md").read_text() == ask
    # Memory learns from the repaired error, not only from the final result.
    failing = json.loads((exp / "MEMORY.json").read_text())["failing"]
    assert [f["attempts"] for f in failing if f["category"] == "compile_error"] == [[1]]
    # The report shows the turns.
    assert looplab("report", str(exp)).returncode == 0
    assert "2 turns" in (exp / "report.html").read_text()
    # The run exports both turns, and a replay of them repeats the repair.
    exported = tmp_path / "replies.jsonl"
    assert looplab("export-replies", str(exp), "-o", str(exported)).returncode == 0
    assert [json.loads(x).get("repair", False) for x in exported.read_text().splitlines()] == [False, True]


def test_repair_turns_0_restores_one_call_per_attempt(tmp_path):
    exp = make_repo(tmp_path)
    with OpenAIServer([reply("8-wide vectors", BROKEN), reply("8-wide vectors", FAST_MATMUL)]) as server:
        result = run(exp, server, "--loop", "2", "--repair-turns", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    db = exp / ".looplab" / "looplab.db"
    assert rows(db, "SELECT id, outcome FROM attempts WHERE id > 0")[0] == (1, "compile_error")
    assert rows(db, "SELECT outcome FROM attempts WHERE id = 2")[0][0] in JUDGED
    assert rows(db, "SELECT attempt_id, kind FROM calls ORDER BY id") == [(1, "propose"), (2, "propose")]
    assert all(m["role"] != "assistant" for messages in sent(server) for m in messages)


def test_the_setting_in_experiment_toml_and_holdout_names_in_no_turn(tmp_path):
    exp = make_repo(tmp_path)
    toml = exp / "experiment.toml"
    toml.write_text(toml.read_text() + "\n[search]\nrepair_turns = 2\n")
    overfit = FAST_MATMUL.replace("ci[j] += aik * bk[j];\n", "ci[j] += aik * bk[j];\n        if (n == 61) ci[0] = 7;\n")
    assert overfit != FAST_MATMUL
    script = [reply("halve", WRONG), reply("still wrong", WRONG.replace("0.5f", "0.25f")),  # invalid, 2 repairs
              reply("wrong again", WRONG.replace("0.5f", "0.125f")),
              reply("only the odd size", overfit)]  # overfit: never repaired, nothing about it is shown
    with OpenAIServer(script) as server:
        result = run(exp, server, "--loop", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    db = exp / ".looplab" / "looplab.db"
    outcomes = rows(db, "SELECT id, outcome FROM attempts WHERE id > 0")
    assert outcomes[0] == (1, "invalid") and outcomes[1] in ((2, "overfit"), (2, "slower"))  # slower: never held out
    assert rows(db, "SELECT attempt_id, kind FROM calls ORDER BY id") == [
        (1, "propose"), (1, "repair"), (1, "repair"), (2, "propose")]
    assert "what happened: 2 attempts, none better than the current best: 2 built and ran (" in result.stdout
    assert "; a repair turn was asked in 1 of them." in result.stdout and "next, a real search:" in result.stdout
    asks = sent(server)
    assert "gave wrong results (invalid)" in asks[1][-1]["content"] and "Repair 1 of 2" in asks[1][-1]["content"]
    assert "Repair 2 of 2" in asks[2][-1]["content"] and len(asks[2]) == len(asks[0]) + 4
    for messages in asks:
        assert HOLDOUT not in json.dumps(messages)
    for path in (exp / "runs").rglob("*"):
        if path.is_file() and path.name != "result.json":
            assert HOLDOUT not in path.read_text(), path


def test_a_duplicate_is_asked_again_with_what_it_repeated_and_a_higher_temperature(tmp_path):
    exp = make_repo(tmp_path)
    with OpenAIServer([reply("the same loop", NAIVE.replace("acc", "sum")), reply("vectors", FAST_MATMUL)]) as server:
        result = run(exp, server, "--loop", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    db = exp / ".looplab" / "looplab.db"
    assert rows(db, "SELECT id, outcome FROM attempts WHERE id > 0")[0] == (1, "duplicate")
    assert rows(db, "SELECT outcome FROM attempts WHERE id = 2")[0][0] in JUDGED
    first, second = (r.body for r in server.requests)
    assert "temperature" not in first and second["temperature"] == pytest.approx(0.95)
    assert "repeated attempt 0 (the baseline" in second["messages"][-1]["content"]


def test_a_replayed_run_without_recorded_repairs_keeps_todays_behaviour(tmp_path):
    exp = make_repo(tmp_path)
    replies = tmp_path / "r.jsonl"
    replies.write_text("".join(json.dumps({"content": r}) + "\n" for r in [reply("b", BROKEN), reply("f", FAST_MATMUL)]))
    assert looplab("run", str(exp), "--model", f"replay:{replies}", "--loop", "2").returncode == 0
    with sqlite3.connect(exp / ".looplab" / "looplab.db") as conn:
        outcomes = [o for o, in conn.execute("SELECT outcome FROM attempts WHERE id > 0 ORDER BY id")]
    assert outcomes[0] == "compile_error" and outcomes[1] in JUDGED and len(outcomes) == 2


def test_a_replay_answers_repair_turns_only_where_they_were_recorded(tmp_path):
    import asyncio

    from looplab.models.base import NoRepair
    from looplab.models.replay import ReplayProvider, write_replies
    from looplab.records import Message, Usage

    path = tmp_path / "r.jsonl"
    assert write_replies(path, [("a", Usage()), ("fix of a", Usage(), True), ("b", Usage())]) == 3
    ask = [Message("user", "go")]
    again = [*ask, Message("assistant", "a"), Message("user", "that failed: fix it")]
    replay = ReplayProvider(path)
    assert [asyncio.run(replay.complete(m)).text for m in (ask, again, ask)] == ["a", "fix of a", "b"]
    with pytest.raises(NoRepair):
        asyncio.run(replay.complete(again))
    without = ReplayProvider(path)  # a run that asks for no repair skips the recorded one
    assert [asyncio.run(without.complete(ask)).text for _ in range(2)] == ["a", "b"]


def test_a_repair_that_sends_the_failure_back_unchanged_keeps_its_verdict_and_the_next_is_hotter(tmp_path):
    exp = make_repo(tmp_path)
    broken = reply("8-wide vectors", BROKEN)
    with OpenAIServer([broken, broken, broken]) as server:
        result = run(exp, server, "--loop", "1", "--repair-turns", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r.body.get("temperature") for r in server.requests] == [None, None, pytest.approx(0.95)]
    row = json.loads((exp / "runs" / "0001" / "result.json").read_text())
    assert row["outcome"] == "compile_error" and row["reason"].startswith("unchanged from turn 1: ")
    assert [t["outcome"] for t in row["details"]["turns"]] == ["compile_error"] * 3
    assert not (exp / "runs" / "0002").exists()  # the same failure again is not a duplicate


def test_no_repair_turn_is_asked_past_the_budget(tmp_path):
    exp = make_repo(tmp_path)
    with OpenAIServer([reply("8-wide vectors", BROKEN), reply("fixed", FAST_MATMUL)]) as server:
        result = run(exp, server, "--loop", "3", "--price", "1000/1000", "--budget-usd", "0.01")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget reached" in result.stdout
    db = exp / ".looplab" / "looplab.db"
    assert rows(db, "SELECT attempt_id, kind FROM calls") == [(1, "propose")]
    assert rows(db, "SELECT id, outcome FROM attempts WHERE id > 0") == [(1, "compile_error")]


def test_the_baseline_with_more_include_lines_is_a_duplicate_of_it():
    from looplab.records import Outcome
    from looplab.screen.novelty import NoveltyIndex

    index = NoveltyIndex("c", 0.95)
    index.record(0, NAIVE, Outcome.BASELINE)
    assert index.nearest("#include <immintrin.h>\n#include <math.h>\n" + NAIVE) == (0, 1.0)
    assert index.nearest("#include <math.h>\n" + WRONG) is None  # a changed literal is a new program
