"""Search policy at the loop level: near-duplicates never evaluated, specialists kept, concurrency."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wire_servers import OpenAIServer

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"
NAIVE = (FIXTURE / "naive.c").read_text()


def looplab(*args, env=None):
    return subprocess.run([sys.executable, "-m", "looplab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def reply(strategy, code):
    return f"Strategy: {strategy}\nTags: t\n\n```c\n{code}```\n"


@pytest.fixture
def exp(tmp_path):
    dest = tmp_path / "matmul"
    shutil.copytree(FIXTURE, dest)
    return dest


def variant(k):
    """Distinct, valid, not-faster programs (different accumulation orders of the naive loop)."""
    return NAIVE.replace("float acc = 0.0f;", f"float acc = 0.0f * {k}.0f;")


def test_near_duplicates_are_recorded_not_evaluated_and_re_asked(exp, tmp_path):
    near = NAIVE.replace("acc", "sum")  # the baseline with a variable renamed
    tweak = variant(2)
    replies = [reply("tweak", tweak), reply("same tweak", tweak.replace("acc", "total")), reply("other", variant(3))]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"content": r}) + "\n" for r in [reply("near", near)] + replies))
    result = looplab("run", str(exp), "--model", f"replay:{path}", "--loop", "2")
    assert result.returncode == 0, result.stderr
    rows = [json.loads((exp / "runs" / f"{i:04d}" / "result.json").read_text()) for i in range(1, 5)]
    outcomes = [r["outcome"] for r in rows]
    assert outcomes[0] == "duplicate" and rows[0]["details"]["duplicate_of"] == 0
    # The duplicate did not use up the slot: 2 slots, 4 attempts (one re-ask each).
    assert outcomes[2] == "duplicate" and rows[2]["details"]["duplicate_of"] == 2
    assert rows[2]["details"]["similarity"] >= 0.95
    assert all(not r["cases"] for r in (rows[0], rows[2]))  # never built nor run
    assert rows[1]["cases"] and rows[3]["cases"]


def test_workers_run_attempts_concurrently_and_record_all(exp, tmp_path):
    n = 4
    codes = [reply(f"variant {k}", variant(k)) for k in range(2, 2 + 2 * n)]
    elapsed = {}
    for workers in (1, 4):
        shutil.rmtree(exp / ".looplab", ignore_errors=True)
        shutil.rmtree(exp / "runs", ignore_errors=True)
        batch = codes[:n] if workers == 1 else codes[n:]
        with OpenAIServer(list(batch), delay_s=2.0) as server:
            # The baseline is evaluated first; time only the attempts via the server's request stamps.
            result = looplab("run", str(exp), "--model", "openai:test-model", "--base-url", server.url,
                             "--loop", str(n), "--workers", str(workers), env={"OPENAI_API_KEY": "x"})
            assert result.returncode == 0, result.stderr
            stamps = [r.at for r in server.requests]
        assert len(stamps) == n
        elapsed[workers] = max(stamps) - min(stamps)
        status = json.loads(looplab("status", str(exp), "--json").stdout)
        assert status["attempts"] == n and sum(status["outcomes"].values()) == n
        ids = sorted(int(p.name) for p in (exp / "runs").iterdir())
        assert ids == list(range(1, n + 1))
    # Sequential requests are spaced by >= the 2 s model delay; concurrent ones arrive together.
    assert elapsed[1] >= 3 * 2.0
    assert elapsed[4] < elapsed[1] / 2


def test_budget_stops_the_run_and_workers_spend_no_more_than_one_worker(exp, tmp_path):
    codes = [reply(f"variant {k}", variant(k)) for k in range(2, 12)]
    calls = {}
    for workers in (1, 4):
        shutil.rmtree(exp / ".looplab", ignore_errors=True)
        shutil.rmtree(exp / "runs", ignore_errors=True)
        # 100,000 prompt tokens at $1 per million: $0.10 a call; the budget affords 3 calls (the 3rd crosses it).
        with OpenAIServer(list(codes), delay_s=1.0, usage={"prompt_tokens": 100_000, "completion_tokens": 0}) as server:
            result = looplab("run", str(exp), "--model", "openai:self-hosted", "--base-url", server.url,
                             "--price", "1/2", "--budget-usd", "0.25", "--loop", "8", "--workers", str(workers),
                             env={"OPENAI_API_KEY": "x"})
            assert result.returncode == 0, result.stderr
            calls[workers] = len(server.requests)
        assert "budget reached: $0.3000 of $0.25" in result.stdout, result.stdout
        status = json.loads(looplab("status", str(exp), "--json").stdout)
        assert status["usage"]["cost_usd"] == pytest.approx(0.1 * calls[workers])
        assert status["attempts"] == calls[workers]
    # Four workers wait for prices they can afford instead of all calling at once.
    assert calls == {1: 3, 4: 3}


def test_a_fault_of_the_machinery_is_recorded_as_infra_error_and_stops_the_run(exp, tmp_path, monkeypatch):
    import asyncio

    from looplab.config import load_experiment
    from looplab.evaluation import assess
    from looplab.loop import RunOptions, run_search
    from looplab.models import provider_from_spec
    from looplab.report.progress import LineProgress

    async def broken_judge(*args, **kwargs):
        raise OSError("disk vanished")

    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"content": reply(f"v{k}", variant(k))}) + "\n" for k in range(2, 12)))
    experiment = load_experiment(exp)
    # The baseline is measured by the real evaluator first; the fault hits the attempts.
    asyncio.run(run_search(experiment, provider_from_spec(f"replay:{path}"), RunOptions(loop=0), LineProgress()))
    monkeypatch.setattr(assess, "judge", broken_judge)
    summary = asyncio.run(run_search(experiment, provider_from_spec(f"replay:{path}"),
                                     RunOptions(loop=10, max_model_errors=3), LineProgress()))
    assert "3 attempts in a row failed outside the candidate" in summary.stopped_because
    assert summary.attempts == [1, 2, 3]
    result = json.loads((exp / "runs" / "0001" / "result.json").read_text())
    assert result["outcome"] == "infra_error" and "disk vanished" in result["reason"]
    assert "OSError" in (exp / "runs" / "0001" / "error.txt").read_text()
