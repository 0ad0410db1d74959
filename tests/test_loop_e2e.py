"""The whole loop on a real C experiment: replayed model replies, real gcc, real SQLite, real git."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Clearly faster (x4, tight spread): plain ikj gains only ~x1.6 with a wide spread on a noisy VM.
from eval_helpers import FAST_MATMUL

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"
NAIVE = (FIXTURE / "naive.c").read_text()
WRONG = NAIVE.replace("c[i * n + j] = acc;", "c[i * n + j] = acc * 0.5f;")
BROKEN = NAIVE.replace("float acc = 0.0f;", "float acc = 0.0f")


def reply(strategy, code, next_idea=""):
    text = f"Strategy: {strategy}\nTags: test\n\n```c\n{code}```\n"
    return text + (f"Next: {next_idea}\n" if next_idea else "")


REPLIES = [
    {"content": "I would try to make it faster somehow.", "usage": {"prompt_tokens": 900, "completion_tokens": 10}},
    {"content": reply("forgot a semicolon", BROKEN), "usage": {"prompt_tokens": 950, "completion_tokens": 200}},
    {"content": reply("halve the result", WRONG), "usage": {"prompt_tokens": 960, "completion_tokens": 200}},
    {"content": reply("ikj over 8-wide vectors", FAST_MATMUL, "blocking"),
     "usage": {"prompt_tokens": 1000, "completion_tokens": 220, "cached_tokens": 500}},
    {"content": reply("same again", "/* re-spelled */\n" + FAST_MATMUL.replace("    ", "  ")),
     "usage": {"prompt_tokens": 1000, "completion_tokens": 200}},
    {"content": reply("back to naive", NAIVE.replace("acc", "sum")), "usage": {"prompt_tokens": 1000, "completion_tokens": 200}},
]


def looplab(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "looplab.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "work"
    shutil.copytree(FIXTURE, root / "matmul")
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "initial")
    return root


def write_replies(path, replies):
    path.write_text("".join(json.dumps(r) + "\n" for r in replies))
    return path


def test_mixed_replies_record_every_outcome_and_accept_only_the_improvement(repo, tmp_path):
    exp = repo / "matmul"
    replies = write_replies(tmp_path / "replies.jsonl", REPLIES)
    result = looplab("run", str(exp), "--model", f"replay:{replies}", "--loop", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no more replies" in result.stdout

    status = json.loads(looplab("status", str(exp), "--json").stdout)
    assert status["attempts"] == 6
    assert status["outcomes"] == {"extract_error": 1, "compile_error": 1, "invalid": 1, "accepted": 1, "duplicate": 2}
    # The paired decision is the real test (accepted above); this ratio compares separate runs.
    assert status["best"]["speedup"] > 1.0 and status["best"]["commit"]
    assert status["baseline"]["metric"] > status["best"]["metric"]
    seed_metric = status["baseline"]["metric"]
    usage = status["usage"]
    assert usage["prompt_tokens"] == 5810 and usage["completion_tokens"] == 1030 and usage["cached_tokens"] == 500
    assert usage["total_tokens"] == 6840

    # The accepted candidate is archived under its commit hash and committed to git.
    commit = status["best"]["commit"]
    assert (exp / "winners" / f"{commit}.c").read_text().strip().endswith("}")
    log = git(repo, "log", "--format=%s")
    assert "matmul" in log and "attempt 4" in log
    assert git(repo, "status", "--porcelain", "--", "matmul/winners").strip() == ""

    # Every attempt left its trail in runs/, and failures feed the next prompt.
    for n in range(1, 7):
        run = exp / "runs" / f"{n:04d}"
        assert (run / "prompt.md").is_file() and (run / "response.md").is_file() and (run / "result.json").is_file()
    assert json.loads((exp / "runs" / "0002" / "result.json").read_text())["outcome"] == "compile_error"
    assert "compile_error" in (exp / "runs" / "0003" / "prompt.md").read_text()
    assert not (exp / "runs" / "0001" / "candidate.c").exists()
    dup = json.loads((exp / "runs" / "0006" / "result.json").read_text())
    assert dup["outcome"] == "duplicate" and "attempt 0" in dup["reason"]
    for name in ("SCORES.md", "SCORES.json", "MEMORY.md", "MEMORY.json"):
        assert (exp / name).is_file(), name
    assert "n61" not in (exp / "MEMORY.md").read_text() + (exp / "runs" / "0004" / "prompt.md").read_text()

    # Every run can be turned into a replay file that reproduces it.
    exported = tmp_path / "exported.jsonl"
    assert looplab("export-replies", str(exp), "-o", str(exported)).returncode == 0
    lines = [json.loads(x) for x in exported.read_text().splitlines()]
    assert [x["content"] for x in lines] == [r["content"] for r in REPLIES]
    assert lines[3]["usage"]["cached_tokens"] == 500

    # Resume: numbering continues; eval judges against the new incumbent without recording.
    more = write_replies(tmp_path / "more.jsonl", [REPLIES[0]])
    assert looplab("run", str(exp), "--model", f"replay:{more}", "--loop", "1").returncode == 0
    assert (exp / "runs" / "0007").is_dir()
    (tmp_path / "naive_again.c").write_text(NAIVE)
    verdict = json.loads(looplab("eval", str(exp), str(tmp_path / "naive_again.c"), "--json").stdout)
    assert verdict["ok"] is True and verdict["category"] == "duplicate" and verdict["speedup"] < 1
    assert json.loads(looplab("status", str(exp), "--json").stdout)["attempts"] == 7

    # Seeding clears the live state but keeps git history and winners/.
    assert looplab("seed", str(exp)).returncode == 0
    assert not (exp / "runs").exists() and (exp / "winners" / f"{commit}.c").is_file()
    assert json.loads(looplab("status", str(exp), "--json").stdout)["attempts"] == 0
    assert "attempt 4" in git(repo, "log", "--format=%s")
    assert looplab("seed", str(exp), "--from-winner", commit).returncode == 0
    status = json.loads(looplab("status", str(exp), "--json").stdout)
    assert status["attempts"] == 0 and status["baseline"]["metric"] < seed_metric


def _processes(cmdline: bytes) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0") == cmdline:
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_kill_9_mid_attempt_then_resume_records_interrupted(repo, tmp_path):
    exp = repo / "matmul"
    proc = subprocess.Popen([sys.executable, "-m", "looplab.cli", "run", str(exp), "--model", "command:sleep 61.25",
                             "--loop", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    db = exp / ".looplab" / "looplab.db"
    deadline = time.time() + 120
    while time.time() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    if conn.execute("select count(*) from attempts where id >= 1 and outcome is null").fetchone()[0]:
                        assert conn.execute("select pid from loops").fetchall() == [(proc.pid,)]  # it beats
                        break
            except sqlite3.OperationalError:
                pass  # created but not migrated yet
        time.sleep(0.2)
    else:
        pytest.fail("the run never started an attempt")
    live = json.loads(looplab("status", str(exp), "--json").stdout)["loops"]
    assert [loop["pid"] for loop in live] == [proc.pid]  # status shows who is working on the experiment
    assert _processes(b"sleep\x0061.25")  # the model command is running, in a session of its own
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    gone = time.time() + 10
    while _processes(b"sleep\x0061.25") and time.time() < gone:
        time.sleep(0.1)
    assert not _processes(b"sleep\x0061.25")  # looplab's kill -9 took its model command along
    replies = write_replies(tmp_path / "r.jsonl", [REPLIES[3]])
    result = looplab("run", str(exp), "--model", f"replay:{replies}", "--loop", "1")
    assert result.returncode == 0, result.stderr
    assert "interrupted" in result.stdout
    status = json.loads(looplab("status", str(exp), "--json").stdout)
    assert status["outcomes"] == {"interrupted": 1, "accepted": 1}
    assert (exp / "runs" / "0002" / "result.json").is_file()
    with sqlite3.connect(db) as conn:  # the killed loop's last beat is forgotten; the clean one removed its own
        assert conn.execute("select count(*) from loops").fetchone()[0] == 0
