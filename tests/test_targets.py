"""Targets beyond a C or Python function: a marked region in a file of any language."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab import filesets
from looplab.config import load_experiment
from looplab.errors import UserError
from looplab.evaluation.assess import evaluate_file
from looplab.propose.extract import ExtractError, extract_candidate
from looplab.propose.prompt import PromptContext, render_prompt

SHELL_PROGRAM = """#!/bin/sh
# Prints a number; the harness scores it (closer to 100 is better).
# EVOLVE-BLOCK-START
echo 40
# EVOLVE-BLOCK-END
"""

SHELL_HARNESS = r"""
import json, subprocess, sys
out = subprocess.run(["/bin/sh", sys.argv[1]], capture_output=True, text=True, timeout=10).stdout.strip()
for case in sys.argv[2:]:
    try:
        value = float(out)
    except ValueError:
        print(json.dumps({"case": case, "ok": False, "error": f"printed {out[:40]!r}, not a number"}))
        continue
    print(json.dumps({"case": case, "ok": True, "score": -abs(100 - value)}))
"""


@pytest.fixture
def shell_experiment() -> Path:
    root = private_dir()
    exp = root / "shell"
    exp.mkdir()
    (exp / "prog.sh").write_text(SHELL_PROGRAM)
    (exp / "harness.py").write_text(SHELL_HARNESS)
    (exp / "experiment.toml").write_text("""
[target]
language = "sh"
baseline = "prog.sh"
[evaluate]
command = "python3 {experiment}/harness.py {candidate} {cases}"
[cases]
search = ["closeness"]
[objective]
kind = "score"
direction = "maximize"
""")
    yield exp
    shutil.rmtree(root, ignore_errors=True)


def test_a_region_in_a_shell_script_is_searched(shell_experiment: Path) -> None:
    exp = load_experiment(shell_experiment)
    assert exp.ext == "sh" and exp.language == "sh"
    prompt = render_prompt(exp, PromptContext(incumbent=exp.baseline_source))[1].content
    assert "```sh\n#!/bin/sh" in prompt and "Sh implementation" in prompt
    reply = "Strategy: closer\n\n```sh\necho 99\n```\n"
    candidate = extract_candidate(reply, language="sh", target="", incumbent=exp.baseline_source)
    assert "echo 99" in candidate.source and "# Prints a number" in candidate.source
    better = asyncio.run(evaluate_file(exp, candidate.source))
    assert better["category"] == "accepted" and better["rule"] == "deterministic_score", better
    worse = asyncio.run(evaluate_file(exp, SHELL_PROGRAM.replace("echo 40", "echo 20")))
    assert worse["category"] == "slower" and "worse" in worse["reason"]


def test_a_function_target_needs_c_or_python(shell_experiment: Path) -> None:
    toml = shell_experiment / "experiment.toml"
    toml.write_text(toml.read_text().replace('baseline = "prog.sh"', 'baseline = "prog.sh"\nfunction = "main"'))
    with pytest.raises(UserError, match="a function target needs c or python"):
        load_experiment(shell_experiment)


# --- a files target: whole files, several of them ---

SUM_HARNESS = r"""
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
total = sum(float((work / "parts" / name).read_text().split()[0]) for name in ("a.txt", "b.txt"))
for case in sys.argv[2:]:
    print(json.dumps({"case": case, "ok": True, "score": total}))
"""


@pytest.fixture
def files_experiment() -> Path:
    root = private_dir()
    exp = root / "sum"
    (exp / "parts").mkdir(parents=True)
    (exp / "parts" / "a.txt").write_text("1\n")
    (exp / "parts" / "b.txt").write_text("2\n")
    (exp / "harness.py").write_text(SUM_HARNESS)
    (exp / "experiment.toml").write_text("""
[target]
language = "text"
files = ["parts/a.txt", "parts/b.txt"]
[evaluate]
command = "python3 {experiment}/harness.py {candidate} {cases}"
[cases]
search = ["total"]
[objective]
kind = "score"
direction = "maximize"
""")
    yield exp
    shutil.rmtree(root, ignore_errors=True)


def test_a_files_target_packs_its_files_and_the_reply_names_each_one(files_experiment: Path) -> None:
    exp = load_experiment(files_experiment)
    assert exp.is_files and exp.ext == "files"
    assert exp.baseline_source == "--- looplab file: parts/a.txt ---\n1\n--- looplab file: parts/b.txt ---\n2\n"
    reply = "Strategy: more\n\nparts/b.txt:\n```text\n5\n```\n"
    cand = extract_candidate(reply, language="text", target="", incumbent=exp.baseline_source,
                             files=exp.config.target.files)
    assert filesets.unpack(cand.source) == {"parts/a.txt": "1\n", "parts/b.txt": "5\n"}
    both = "### parts/a.txt\n```\n4\n```\n```text parts/b.txt\n6\n```\n"
    assert filesets.unpack(extract_candidate(both, language="text", target="", incumbent=exp.baseline_source,
                                             files=exp.config.target.files).source)["parts/a.txt"] == "4\n"
    edit = "parts/a.txt\n<<<<<<< SEARCH\n1\n=======\n9\n>>>>>>> REPLACE\n"
    assert "9\n" in extract_candidate(edit, language="text", target="", incumbent=exp.baseline_source,
                                      files=exp.config.target.files).source


@pytest.mark.parametrize("reply, words", [
    ("experiment.toml:\n```\nname = 'x'\n```\n", "not one of the files you may change"),
    ("```\n5\n```\n", "does not say which file"),
    ("../../etc/passwd\n```\nroot\n```\n", "not one of the files"),
    ("Strategy: nothing\n", "no file in the reply"),
])
def test_a_files_reply_writes_only_the_target_files(files_experiment: Path, reply: str, words: str) -> None:
    exp = load_experiment(files_experiment)
    with pytest.raises(ExtractError, match=words):
        extract_candidate(reply, language="text", target="", incumbent=exp.baseline_source,
                          files=exp.config.target.files)


def test_a_files_candidate_is_judged_archived_and_committed(files_experiment: Path) -> None:
    root = files_experiment.parent
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "add", "."], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"],
                   check=True)
    replies = root / "replies.jsonl"
    replies.write_text(json.dumps({"content": "Strategy: bigger b\n\nparts/b.txt:\n```text\n7\n```\n",
                                   "usage": {"prompt_tokens": 10, "completion_tokens": 5}}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "looplab.cli", "run", str(files_experiment), "--model",
                           f"replay:{replies}", "--loop", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    live = files_experiment / "incumbent.files"
    assert (live / "parts" / "b.txt").read_text() == "7\n" and (live / "parts" / "a.txt").read_text() == "1\n"
    winners = list((files_experiment / "winners").iterdir())
    assert len(winners) == 1 and (winners[0] / "parts" / "b.txt").read_text() == "7\n"
    tracked = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True).stdout
    assert f"sum/winners/{winners[0].name}/parts/b.txt" in tracked and "sum/incumbent.files/parts/b.txt" in tracked
    assert (files_experiment / "parts" / "b.txt").read_text() == "2\n"  # the user's files stay as they were
    prompt = (files_experiment / "runs" / "0001" / "prompt.md").read_text()
    assert "parts/a.txt\n```text\n1\n```" in prompt and "looplab file:" not in prompt
    assert "(of: parts/a.txt, parts/b.txt)" in prompt


def test_looplab_eval_takes_a_files_candidate_as_a_folder(files_experiment: Path) -> None:
    cand = files_experiment.parent / "cand"
    (cand / "parts").mkdir(parents=True)
    (cand / "parts" / "a.txt").write_text("3\n")
    (cand / "parts" / "b.txt").write_text("2\n")
    run = [sys.executable, "-m", "looplab.cli", "eval", str(files_experiment)]
    proc = subprocess.run([*run, str(cand), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["category"] == "accepted", proc.stderr
    (cand / "parts" / "b.txt").unlink()
    bad = subprocess.run([*run, str(cand)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a candidate for this files target" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_python_tools_see_no_host_tmp() -> None:
    from looplab import harness

    assert all(str(p) not in ("/", "/tmp") for p in harness.python_paths())
