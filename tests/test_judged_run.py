"""Judged objectives through `looplab run`, `status` and `calibrate` (real processes, a real SQLite store, a
judge model behind a real HTTP server on 127.0.0.1): judge calls recorded as their own kind, priced apart
from proposals, inside --budget-usd; calibration's false wins and order flips."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir
from judge_helpers import SEARCH, better_judge, first_judge, judged_experiment, prompt
from test_judged import BETTER_ON_MOST
from wire_servers import OpenAIServer


def looplab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "looplab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "OPENAI_API_KEY": "x"}, timeout=600)


def replies(path: Path, *prompts: str) -> str:
    lines = [json.dumps({"content": f"Strategy: try {i}\nTags: t\n\nprompt.md:\n```markdown\n{p}```\n"})
             for i, p in enumerate(prompts)]
    path.write_text("\n".join(lines) + "\n")
    return f"replay:{path}"


def judge_flags(server: OpenAIServer, price: str) -> list[str]:
    return ["--judge-model", "openai:judge-model", "--judge-base-url", server.url, "--judge-price", price]


def calls(exp: Path) -> list[dict]:
    with sqlite3.connect(exp / ".looplab" / "looplab.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM calls ORDER BY id")]


@pytest.fixture
def root():
    d = private_dir()
    yield d
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def test_judge_calls_are_recorded_and_priced_apart_from_proposals(root: Path) -> None:
    exp = judged_experiment(root).root
    shown_only = prompt("level: 1", *(f"level for {t}: 7" for t in SEARCH.values()))  # beats the new incumbent
    model = replies(root / "r.jsonl", BETTER_ON_MOST, shown_only)
    # 1,000 prompt + 100 completion tokens at $1 / $2 per million: $0.0012 a judge call.
    with OpenAIServer(better_judge, usage={"prompt_tokens": 1000, "completion_tokens": 100}) as server:
        result = looplab("run", str(exp), "--model", model, "--loop", "2", *judge_flags(server, "1/2"))
        assert result.returncode == 0, result.stderr
        requests = len(server.requests)
    assert "outputs judged by openai:judge-model" in result.stdout + result.stderr
    # The proposing model sees what the current best produced for search inputs, never a hidden one.
    shown = (exp / "runs" / "0001" / "prompt.md").read_text()
    assert "Measured: orders: 'Customer message" in shown and '"level": 3' in shown
    assert "warranty" not in shown and "password" not in shown and "hidden_" not in shown
    assert "a judge compares its outputs" in shown
    rows = [json.loads((exp / "runs" / f"{i:04d}" / "result.json").read_text()) for i in (1, 2)]
    assert [r["outcome"] for r in rows] == ["accepted", "overfit"], [r["reason"] for r in rows]
    judge_calls = [c for c in calls(exp) if c["kind"] == "judge"]
    assert len(judge_calls) == requests > 0
    assert {c["attempt_id"] for c in judge_calls} == {1, 2}
    assert all(c["cost_usd"] == pytest.approx(0.0012) and c["prompt_tokens"] == 1000 for c in judge_calls)
    assert all(c["model"] == "openai:judge-model" for c in judge_calls)
    status = json.loads(looplab("status", str(exp), "--json").stdout)
    kinds = status["usage_by_kind"]
    assert kinds["judge"]["cost_usd"] == pytest.approx(0.0012 * requests)
    assert kinds["propose"]["cost_usd"] == 0.0  # replayed proposals cost nothing
    assert status["usage"]["cost_usd"] == pytest.approx(0.0012 * requests)
    text = looplab("status", str(exp)).stdout
    assert f"judge ${0.0012 * requests:.4f}" in text and "proposals $0.0000" in text
    assert f"judge ${0.0012 * requests:.4f}" in (exp / "SCORES.md").read_text()
    assert looplab("report", str(exp)).returncode == 0
    assert f"judge ${0.0012 * requests:.4f} of it" in (exp / "report.html").read_text()


def test_the_budget_stops_a_run_whose_judge_spends_it(root: Path) -> None:
    exp = judged_experiment(root).root
    model = replies(root / "r.jsonl", *(prompt(f"level: {k}") for k in range(4, 10)))
    # 100,000 prompt tokens at $1 per million: $0.10 a judge call, two calls a comparison.
    with OpenAIServer(better_judge, usage={"prompt_tokens": 100_000, "completion_tokens": 0}) as server:
        result = looplab("run", str(exp), "--model", model, "--loop", "6", "--budget-usd", "0.5",
                         *judge_flags(server, "1/2"))
        assert result.returncode == 0, result.stderr
        requests = len(server.requests)
    # Comparisons run one at a time under a budget: checked before each, so it stops within one comparison.
    assert requests == 6, requests
    assert "budget reached: $0.6000 of $0.50" in result.stdout, result.stdout
    first = json.loads((exp / "runs" / "0001" / "result.json").read_text())
    assert first["outcome"] == "slower" and "judging stopped: the budget is spent" in first["reason"]
    assert not (exp / "runs" / "0002").exists()
    assert sum(c["cost_usd"] for c in calls(exp) if c["kind"] == "judge") == pytest.approx(0.6)


def test_a_judge_model_that_refuses_its_key_stops_the_run_at_once(root: Path) -> None:
    exp = judged_experiment(root).root
    model = replies(root / "r.jsonl", *(prompt(f"level: {k}") for k in range(4, 10)))
    with OpenAIServer(better_judge, fail_first=[401] * 50) as server:
        result = looplab("run", str(exp), "--model", model, "--loop", "5", *judge_flags(server, "1/2"))
        requests = len(server.requests)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "the judge model openai:judge-model" in line and "rejected the API key" in line and "fix:" in line, line
    assert requests <= 2 * len(SEARCH)  # one round's comparisons (both orders) were in flight; no more
    first = json.loads((exp / "runs" / "0001" / "result.json").read_text())
    assert first["outcome"] == "infra_error" and "rejected the API key" in first["reason"]
    assert not (exp / "runs" / "0002").exists()
    assert [c["kind"] for c in calls(exp) if c["error"]] == ["judge"] * requests


def test_calibrate_reports_false_wins_and_order_flips(root: Path) -> None:
    exp = judged_experiment(root, baseline=prompt("level: 3", "jitter: 2")).root  # a sampling task model
    with OpenAIServer(first_judge) as server:
        result = looplab("calibrate", str(exp), "--trials", "3", "--json", *judge_flags(server, "1/2"))
        assert result.returncode == 0, result.stderr
    biased = json.loads(result.stdout)
    assert biased["rule"] == "judged" and biased["judge"] == "openai:judge-model"
    assert biased["false_accept_rate"] == 0 and biased["false_win_rate"] == 0
    assert biased["order_flip_rate"] == 1.0 and biased["judged_comparisons"] > 0
    assert biased["judge_calls"] == 2 * biased["judged_comparisons"]
    with OpenAIServer(better_judge) as server:
        result = looplab("calibrate", str(exp), "--trials", "3", *judge_flags(server, "1/2"))
        assert result.returncode == 0, result.stderr
    assert "false-acceptance rate: 0.000" in result.stdout
    assert "order-flip rate: 0.000" in result.stdout
    assert "false-win rate: 0." in result.stdout


def test_a_judged_experiment_needs_a_judge_a_rubric_and_outputs(root: Path) -> None:
    exp = judged_experiment(root).root
    cand = root / "cand"
    cand.mkdir()
    (cand / "prompt.md").write_text(prompt("level: 4"))
    no_judge = looplab("eval", str(exp), str(cand))
    assert no_judge.returncode == 2 and "field 'judge.model': missing" in no_judge.stderr
    (exp / "harness.py").write_text("import json, sys\nfor c in sys.argv[4:]:\n"
                                    "    print(json.dumps({'case': c, 'nonce': sys.argv[3], 'ok': True, 'score': 1}))\n")
    with OpenAIServer(better_judge) as server:
        no_output = looplab("eval", str(exp), str(cand), *judge_flags(server, "1/2"))
    assert no_output.returncode == 2 and 'has no "output"' in no_output.stderr
    assert len(no_output.stderr.strip().splitlines()) == 1
    (exp / "RUBRIC.md").unlink()
    no_rubric = looplab("status", str(exp))
    assert no_rubric.returncode == 2 and "field 'judge.rubric'" in no_rubric.stderr
