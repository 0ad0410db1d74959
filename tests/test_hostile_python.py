"""Hostile Python candidates against looplab's Python supervisor, through the real judge.

Each is a model reply in tests/fixtures/hostile_python/<name>.md, run on a small copy of the
editdistance experiment with the real interpreter and the real sandbox. No static screen runs
here: the supervisor/worker split and the worker's seccomp filter must stop them on their own.
Every one is rejected with a specific outcome and reason, and afterwards the same evaluator still
accepts a genuinely faster candidate and still refuses the baseline re-spelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import private_dir

from looplab import harness
from looplab.acceptance.judge import Verdict, judge
from looplab.config import Experiment, load_experiment
from looplab.errors import UserError
from looplab.evaluation.evaluator import Evaluator
from looplab.harness.py.channel import CaseFailed, Timed
from looplab.harness.py.supervisor import Harness, _results
from looplab.records import Outcome
from looplab.sandbox import command as sandbox

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = FIXTURES / "hostile_python"
FASTER = FIXTURES / "candidates" / "editdistance" / "faster.py"
SEARCH, HOLDOUT = ["short_words", "sentences_100"], ["unicode_mixed", "edge"]


@pytest.fixture(scope="module")
def exp() -> Experiment:
    """editdistance with two search and two holdout cases, 5 timed calls, a 3 s deadline per call."""
    d = private_dir()
    dest = d / "editdistance"
    shutil.copytree(ROOT / "experiments" / "editdistance", dest,
                    ignore=shutil.ignore_patterns(".looplab", "runs", "winners", "__pycache__"))
    toml = dest / "experiment.toml"
    text = toml.read_text()
    text = re.sub(r"(?m)^search = \[.*\]$", f"search = {SEARCH!r}".replace("'", '"'), text)
    text = re.sub(r"(?m)^holdout = \[.*\]$", f"holdout = {HOLDOUT!r}".replace("'", '"'), text)
    assert text.count(" {cases}\"") == 1
    text = text.replace(" {cases}\"", " --max-reps 5 --call-timeout 3 {cases}\"")
    text = text.replace("timeout_s = 120", "timeout_s = 30")
    toml.write_text(text)
    yield load_experiment(dest)
    shutil.rmtree(d, ignore_errors=True)


def reply(name: str) -> str:
    """The Python code block of a hostile model reply."""
    code = re.search(r"```python\n(.*?)```", (HOSTILE / f"{name}.md").read_text(), re.S)
    assert code, f"{name}.md has no ```python block"
    return code.group(1)


def run_judge(exp: Experiment, source: str) -> Verdict:
    return asyncio.run(judge(exp, Evaluator(exp), candidate_source=source, incumbent_source=exp.baseline_source,
                             best_case_medians={}))


def leftovers(exp: Experiment) -> list[str]:
    """Processes still running anything from the experiment folder or a worker."""
    found = []
    for p in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if p.isdigit() and (str(exp.root) in cmd or "harness/py/worker.py" in cmd):
            found.append(p)
    return found


REJECTED = [
    # the clocks it patches are the worker's; the supervisor times with its own
    ("patch_clock", {Outcome.SLOWER}, ""),
    # no reference, no expected values, no caller frame with answers in the worker
    ("borrow_reference", {Outcome.INVALID}, "returned 0, expected"),
    # no nonce or case names to read (argv is the worker's, /proc cannot be opened), fd 1 is /dev/null
    ("forge_result_lines", {Outcome.INVALID}, "returned -1, expected"),
    ("exit_early", {Outcome.CRASH}, "worker exited with code 0 during call 1"),
    ("exit_at_import", {Outcome.CRASH}, "worker exited with code 0 while loading the candidate"),
    ("threads", {Outcome.INVALID}, "raised RuntimeError: can't start new thread on call 1"),
    ("fork_workers", {Outcome.INVALID}, "raised PermissionError"),
    ("multiprocessing_pool", {Outcome.CRASH}, "candidate failed to load: ModuleNotFoundError"),
    # ctypes recovered from memory: the filter holds against raw system calls, kill() is fatal
    ("native_syscalls", {Outcome.CRASH}, "killed by SIGSYS (a forbidden system call) during call 1"),
    ("kill_supervisor", {Outcome.CRASH}, "killed by SIGSYS (a forbidden system call) during call 1"),
    # nothing in the worker tells a holdout run from a search run
    ("holdout_provenance", {Outcome.OVERFIT}, "on a hidden holdout case"),
    # results travel as JSON: the lie in __eq__ stays in the worker
    ("lying_int", {Outcome.INVALID}, "returned 0, expected"),
    ("cache_by_identity", {Outcome.INVALID}, ", expected"),  # on call 3, once call 1's strings are freed
    ("reply_ahead", {Outcome.INVALID}, "while loading the candidate"),
    ("infinite_loop", {Outcome.TIMEOUT}, "no answer within 3 s during call 1"),
    ("newline_in_error", {Outcome.INVALID}, "raised ValueError"),
    ("huge_reply", {Outcome.INVALID}, "over the 8388608-byte cap"),
    ("stack_overflow", {Outcome.CRASH}, "worker killed by SIGSEGV during call 1"),
    ("right_on_warmup_only", {Outcome.INVALID}, "on call 2"),
]
if platform.machine() == "x86_64":  # the x32 system call table exists only there
    REJECTED.append(("foreign_abi", {Outcome.CRASH}, "killed by SIGSYS (a forbidden system call) during call 1"))


@pytest.mark.parametrize("name, outcomes, words", REJECTED, ids=[r[0] for r in REJECTED])
def test_hostile_python_candidate_is_rejected(exp: Experiment, name: str, outcomes: set[Outcome],
                                              words: str) -> None:
    v = run_judge(exp, reply(name))
    assert v.decision.outcome in outcomes and words in v.decision.reason, v.decision.reason
    assert not any(h in v.decision.reason for h in HOLDOUT)
    assert leftovers(exp) == []


DEGRADED = [r for r in REJECTED if r[0] in ("forge_result_lines", "native_syscalls", "fork_workers", "kill_supervisor")]


@pytest.mark.parametrize("name, outcomes, words", DEGRADED, ids=[r[0] for r in DEGRADED])
def test_without_bubblewrap_the_worker_still_holds(exp: Experiment, monkeypatch: pytest.MonkeyPatch, name: str,
                                                   outcomes: set[Outcome], words: str) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "rlimits")
    if os.geteuid() == 0:
        try:  # as root, rlimits mode runs the harness as a throw-away uid that must reach {python}
            sandbox._check_reachable(harness.python_paths())
        except UserError as e:
            pytest.skip(str(e))
    v = run_judge(exp, reply(name))
    assert v.decision.outcome in outcomes and words in v.decision.reason, v.decision.reason
    assert leftovers(exp) == []


_FAILURE = {Outcome.CRASH: "crash", Outcome.INVALID: "invalid", Outcome.TIMEOUT: "timeout"}


@pytest.mark.parametrize("name, outcomes, words", DEGRADED, ids=[r[0] for r in DEGRADED])
def test_with_no_sandbox_at_all_the_worker_still_holds(exp: Experiment, tmp_path: Path, name: str,
                                                      outcomes: set[Outcome], words: str) -> None:
    """The harness run bare (this test's uid, no bwrap, no rlimits): only the split and seccomp."""
    cand = tmp_path / "candidate.py"
    cand.write_text(reply(name))
    proc = subprocess.run([sys.executable, "-I", str(exp.root / "harness" / "bench.py"), "--candidate", str(cand),
                           "--nonce", "n0nce", "--max-reps", "1", "--call-timeout", "2", "short_words"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          start_new_session=True)  # a kill(0) that got through would stop only this group
    assert proc.returncode == 0, proc.stderr
    (line,) = [json.loads(t) for t in proc.stdout.splitlines()]
    assert line["nonce"] == "n0nce" and line["ok"] is False and words in line["error"], line
    assert line["failure"] == _FAILURE[next(iter(outcomes))], line
    assert "ESCAPED" not in line["error"]


def test_the_worker_sees_no_case_name_nonce_or_seed(exp: Experiment) -> None:
    """Everything a candidate can read without opening a file, sent back as its error."""
    probe = ("import gc, os, sys\n\n"
             "def levenshtein(a, b):\n"
             "    gc.unfreeze()\n"
             "    seen = sys.argv + list(os.environ) + list(os.environ.values())\n"
             "    seen += [o for o in gc.get_objects() if isinstance(o, str)]\n"
             "    f = sys._getframe()\n"
             "    while f is not None:\n"
             "        seen += [repr(v)[:80] for v in f.f_locals.values()]\n"
             "        f = f.f_back\n"
             "    raise ValueError('|'.join(s for s in seen if any(w in s for w in ('_', '-'))))\n")
    v = run_judge(exp, probe)
    assert v.decision.outcome == Outcome.INVALID and "raised ValueError" in v.decision.reason
    seen = v.evaluation.cases[SEARCH[0]].error or ""
    for word in [*SEARCH, *HOLDOUT, "--nonce", "--seed", "nonce", "holdout", "expected", "reference"]:
        assert word not in seen.split("raised ValueError:")[1].split(" on call ")[0], word


def test_parallel_work_shows_as_more_cpu_than_wall_time() -> None:
    """Threads cannot start in the worker; should one exist anyway, its CPU time gives it away."""
    h = Harness("f", {}, lambda args, got: None)
    ok = Timed(b'{"results": [1]}', wall_ns=10_000_000, cpu_ns=9_000_000)
    assert _results(h, ok, [(1,)], 1) == [1]
    with pytest.raises(CaseFailed, match="in parallel"):
        _results(h, Timed(ok.reply, wall_ns=10_000_000, cpu_ns=19_000_000), [(1,)], 2)


def test_after_all_that_a_faster_candidate_is_still_accepted(exp: Experiment) -> None:
    v = run_judge(exp, FASTER.read_text())
    assert v.decision.outcome == Outcome.ACCEPTED, v.decision.reason
    assert v.holdout is not None and v.holdout.ok


def test_and_the_baseline_respelled_is_still_not(exp: Experiment) -> None:
    respelled = ("def levenshtein(s, t):\n    n, m = len(s) + 1, len(t) + 1\n"
                 "    table = [[0] * m for _ in range(n)]\n"
                 "    for x in range(n):\n        table[x][0] = x\n"
                 "    for y in range(m):\n        table[0][y] = y\n"
                 "    for x in range(1, n):\n        for y in range(1, m):\n"
                 "            c = 0 if s[x - 1] == t[y - 1] else 1\n"
                 "            table[x][y] = min(table[x - 1][y] + 1, table[x][y - 1] + 1, table[x - 1][y - 1] + c)\n"
                 "    return table[n - 1][m - 1]\n")
    v = run_judge(exp, respelled)
    assert v.decision.outcome == Outcome.SLOWER, v.decision.reason
