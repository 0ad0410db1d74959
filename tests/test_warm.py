"""Warm sandboxes (looplab/sandbox/warm.py): a host started once forks a fresh child per evaluation.

Real bubblewrap, real processes, real evaluator files: a warm evaluation scores what a cold one scores;
nothing a child does (files anywhere it can write, processes that left its group, System V IPC,
changes to modules in memory) reaches the next child; a timeout kills all the child started; a host
that dies or stops answering is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from looplab.config import LimitsConfig, load_experiment
from looplab.evaluation.evaluator import Evaluator
from looplab.sandbox import command as sandbox
from looplab.sandbox import warm

pytestmark = pytest.mark.skipif(not (os.geteuid() == 0 and sandbox._bwrap_status()[0]),
                                reason="warm hosts need bubblewrap and root (throw-away uids)")

EVALUATOR = '''
import importlib.util

def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    found = program.probe()
    return {"combined_score": float(program.score()), "found": ",".join(found) or "nothing"}
'''

PROGRAM = '''
import json
import os

# EVOLVE-BLOCK-START
def score():
    return 3.0
# EVOLVE-BLOCK-END


def probe():
    return []
'''

# Looks for what an earlier child left, then leaves all of it for the next one.
LEAKY = '''
import ctypes
import json
import os
import subprocess
import sys

# EVOLVE-BLOCK-START
def score():
    return 3.0
# EVOLVE-BLOCK-END

PLACES = ["/tmp/leak", "/dev/shm/leak", os.path.join(os.environ.get("HOME", "."), "leak"), "leak", "../leak",
          os.path.join(os.environ.get("TMPDIR", "."), "leak")]


def probe():
    found = [p for p in PLACES if os.path.exists(p)]
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and b"leaky-sleeper" in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append("process")
        except OSError:
            pass
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.shmget(0x1eaf, 0, 0) >= 0:
        found.append("shm")
    if getattr(json, "leaked", False):
        found.append("memory")
    for p in PLACES:
        try:
            with open(p, "w") as f:
                f.write("left behind")
        except OSError:
            pass
    libc.shmget(0x1eaf, 4096, 0o1000 | 0o666)  # IPC_CREAT
    json.leaked = True
    subprocess.Popen([sys.executable, "-c", "import os, time\\nos.setsid()\\nif os.fork() == 0:\\n    time.sleep(60)",
                      "leaky-sleeper"], start_new_session=True)
    return found
'''


def folder(tmp_path: Path, program: str = PROGRAM, timeout: int = 20) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    (root / "evaluator.py").write_text(textwrap.dedent(EVALUATOR))
    (root / "initial_program.py").write_text(textwrap.dedent(program))
    (root / "config.yaml").write_text(f"evaluator:\n  timeout: {timeout}\n  cascade_evaluation: false\n")
    os.chmod(root, 0o755)
    os.chmod(tmp_path, 0o755)
    return root


def evaluate(evaluator: Evaluator, source: str):
    return asyncio.run(evaluator.evaluate(source, ["score"]))


def test_warm_scores_what_cold_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = load_experiment(folder(tmp_path))
    warm_ev = Evaluator(exp)
    first, second = evaluate(warm_ev, exp.baseline_source), evaluate(warm_ev, exp.baseline_source)
    assert warm_ev._warm is not None and warm_ev._warm.started == 1  # one host served both
    monkeypatch.setenv(warm.WARM_ENV, "0")
    cold_ev = Evaluator(exp)
    cold = evaluate(cold_ev, exp.baseline_source)
    assert cold_ev._warm is None
    for ev in (first, second, cold):
        assert ev.ok, ev.reason
        assert ev.cases["score"].samples == [3.0]
    warm_ev.close()


def test_a_host_started_early_serves_the_runs_first_evaluation(tmp_path: Path) -> None:
    exp = load_experiment(folder(tmp_path))
    early = Evaluator(exp)
    early.warm_up()  # what `looplab run` does before it imports the model's client
    pool = early.warm_pool()
    assert pool is not None and pool.started == 1
    run = Evaluator(exp)  # the run's own evaluator, made later
    assert run.warm_pool() is pool
    assert evaluate(run, exp.baseline_source).ok and pool.started == 1
    early.close()


def test_a_child_leaves_nothing_for_the_next(tmp_path: Path) -> None:
    exp = load_experiment(folder(tmp_path, LEAKY))
    ev = Evaluator(exp)
    runs = [evaluate(ev, exp.baseline_source) for _ in range(3)]
    assert ev._warm is not None and ev._warm.started == 1, ev._warm.dropped
    for run in runs:
        assert run.ok, run.reason
        assert run.cases["score"].metrics["found"] == "nothing"
    time.sleep(0.2)
    left = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).find(b"leaky-sleeper") >= 0]
    assert left == []
    ev.close()


TAMPER_EVALUATOR = '''
import importlib.util

def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    found = program.probe(__file__) + (["module"] if globals().get("TAMPERED") else [])
    return {"combined_score": float(program.score()), "found": ",".join(found) or "nothing"}
'''

# Looks for what an earlier child did to its copy of the experiment, then rewrites that copy: the evaluator's
# source and compiled code, a data file beside it, a new file.
TAMPER = '''
import importlib.util
import os
import py_compile

# EVOLVE-BLOCK-START
def score():
    return 3.0
# EVOLVE-BLOCK-END


def probe(evaluator):
    here = os.path.dirname(evaluator)
    found = [name for name, seen in [
        ("evaluator", "TAMPERED = True" in open(evaluator).read()), ("planted", os.path.exists(os.path.join(here, "planted"))),
        ("data", open(os.path.join(here, "data.txt")).read() != "pristine\\n")] if seen]
    with open(evaluator, "a") as f:
        f.write("\\nTAMPERED = True\\n")
    cached = importlib.util.cache_from_source(evaluator)
    try:
        py_compile.compile(evaluator, cfile=cached, doraise=True)
    except (OSError, py_compile.PyCompileError):
        os.rename(os.path.dirname(cached), os.path.join(here, "old-cache"))  # its folder is the child's
        py_compile.compile(evaluator, cfile=cached, doraise=True)
    with open(os.path.join(here, "planted"), "w") as f:
        f.write("left behind")
    with open(os.path.join(here, "data.txt"), "w") as f:
        f.write("changed\\n")
    return found
'''


def test_a_child_that_rewrites_its_copy_of_the_experiment_changes_nothing_for_the_next(tmp_path: Path) -> None:
    root = folder(tmp_path, TAMPER)
    (root / "evaluator.py").write_text(textwrap.dedent(TAMPER_EVALUATOR))
    (root / "data.txt").write_text("pristine\n")
    exp = load_experiment(root)
    ev = Evaluator(exp)
    honest = textwrap.dedent(PROGRAM).replace("def probe():", "def probe(evaluator):")
    runs = [evaluate(ev, exp.baseline_source) for _ in range(3)] + [evaluate(ev, honest)]
    assert ev._warm is not None and ev._warm.started == 1
    for run in runs:
        assert run.ok, run.reason
        assert run.cases["score"].samples == [3.0] and run.cases["score"].metrics["found"] == "nothing"
    assert "TAMPERED = True" not in (root / "evaluator.py").read_text() and (root / "data.txt").read_text() == "pristine\n"
    assert not (root / "planted").exists()
    ev.close()


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _pool(tmp_path: Path) -> warm.WarmPool:
    os.chmod(tmp_path, 0o755)
    return warm.WarmPool(tmp_path / "warm", readonly=[tmp_path], hidden=[], shadow=[], imports=[])


def _script(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"s{time.monotonic_ns()}.py"
    path.write_text(textwrap.dedent(text))
    os.chmod(path, 0o644)
    return str(path)


SPAWN_AND_SPIN = '''
import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "warm-escapee"], start_new_session=True)
print("spinning", flush=True)
while True:
    pass
'''


def test_timeout_kills_the_child_and_all_it_started(tmp_path: Path) -> None:
    pool = _pool(tmp_path)

    async def scenario():
        slow = await pool.run(_script(tmp_path, SPAWN_AND_SPIN), prepare=lambda work: [], timeout_s=1.5,
                              limits=LimitsConfig())
        after = await pool.run(_script(tmp_path, "print('next')\n"), prepare=lambda work: [], timeout_s=10,
                               limits=LimitsConfig())
        return slow, after

    slow, after = asyncio.run(scenario())
    assert slow is not None and slow.timed_out and "spinning" in slow.stdout
    assert after is not None and after.returncode == 0 and after.stdout == "next\n"
    assert pool.started == 1, pool.dropped  # the host that ran the timed-out child serves the next one
    assert not [p for p in os.listdir("/proc") if p.isdigit() and b"warm-escapee" in _cmdline(p)]
    pool.close()


def test_limits_and_identity_are_a_cold_runs(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    probe = '''
    import os, resource
    print(os.getuid() != 0, os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid())
    print(resource.getrlimit(resource.RLIMIT_CPU)[0], resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    print(sorted(os.environ))
    for place in ("/tmp/x", "/dev/shm/x", os.environ["TMPDIR"] + "/x"):
        try:
            open(place, "w").close()
            print("wrote", place.rsplit("/", 2)[-2])
        except OSError:
            print("refused", place)
    print(os.sched_getaffinity(0))
    '''
    res = asyncio.run(pool.run(_script(tmp_path, probe), prepare=lambda work: [], timeout_s=10,
                               limits=LimitsConfig(cpu_s=7, open_files=33), pin_cpu=0))
    assert res is not None and res.returncode == 0, res
    lines = res.stdout.splitlines()
    assert lines[0] == "True True True"
    assert lines[1] == "7 33"
    assert "OPENAI_API_KEY" not in lines[2] and "'HOME'" in lines[2]
    assert lines[3].startswith("refused /tmp") and lines[4].startswith("refused /dev/shm")
    assert lines[5] == "wrote .tmp"
    assert lines[6] == "{0}"
    pool.close()


def test_a_host_that_dies_or_hangs_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm, "REPLY_GRACE_S", 2.0)
    pool = _pool(tmp_path)
    hello = _script(tmp_path, "print('hello')\n")

    async def once():
        return await pool.run(hello, prepare=lambda work: [], timeout_s=2, limits=LimitsConfig())

    assert asyncio.run(once()).stdout == "hello\n"
    (host,) = pool._idle
    os.killpg(host.proc.pid, signal.SIGKILL)  # dies while idle: the next evaluation gets a new host
    host.proc.wait()
    assert asyncio.run(once()).stdout == "hello\n"
    assert pool.started == 2
    (host,) = pool._idle
    os.kill(_descendants(host.proc.pid)[-1], signal.SIGSTOP)  # the host stops answering: an infra error
    hung = asyncio.run(once())
    assert hung is not None and hung.infra_error
    assert host.proc.wait(timeout=10) is not None  # killed, not left stopped
    assert asyncio.run(once()).stdout == "hello\n"
    assert pool.started == 3
    pool.close()


def test_an_evaluation_stopped_midway_leaves_nothing_and_retires_its_host(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    slow = _script(tmp_path, SPAWN_AND_SPIN)

    async def scenario():
        task = asyncio.ensure_future(pool.run(slow, prepare=lambda work: [], timeout_s=30, limits=LimitsConfig()))
        await asyncio.sleep(1.0)
        task.cancel()  # Ctrl-C while the child runs
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await pool.run(_script(tmp_path, "print('after')\n"), prepare=lambda work: [], timeout_s=10,
                              limits=LimitsConfig())

    after = asyncio.run(scenario())
    assert after is not None and after.stdout == "after\n"
    assert pool.dropped == ["stopped during an evaluation"] and pool.started == 2
    time.sleep(0.2)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and b"warm-escapee" in _cmdline(p)]
    pool.close()


def _descendants(pid: int) -> list[int]:
    """pid's descendants, parents first (bwrap, its namespace's init, the host)."""
    parents = {}
    for p in os.listdir("/proc"):
        try:
            if p.isdigit():
                parents[int(p)] = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    out, frontier = [], [pid]
    while frontier:
        kids = sorted(c for c, parent in parents.items() if parent in frontier)
        out += kids
        frontier = kids
    return out


def test_evaluator_imports_are_installed_modules_and_their_used_submodules(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("")
    ev = tmp_path / "evaluator.py"
    ev.write_text("import numpy as np\nimport helper\nfrom os import path\n\ndef f():\n    import json\n"
                  "    return np.random.rand()\n")
    names = warm.evaluator_imports([ev], tmp_path)
    assert names[:3] == ["numpy", "os", "os.path"] and "json" in names and "numpy.random" in names
    assert "helper" not in names


def test_a_child_forked_ahead_and_never_used_leaves_nothing(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    hello = _script(tmp_path, "print('hello')\n")

    def waiting(host: warm.Host) -> list[int]:  # the host and the child it forked for the next evaluation
        deadline = time.monotonic() + 10  # the host answers first, then cleans up and forks the next child
        while True:
            found = [p for p in _descendants(host.proc.pid) if _cmdline(str(p)).startswith(sys.executable.encode())]
            if len(found) >= 2 or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    async def once():
        return await pool.run(hello, prepare=lambda work: [], timeout_s=5, limits=LimitsConfig())

    assert asyncio.run(once()).stdout == "hello\n"
    (host,) = pool._idle
    first = waiting(host)
    assert len(first) == 2, first
    os.kill(first[0], signal.SIGKILL)  # the host alone dies: the child it forked ahead dies with its namespace
    host.proc.wait(timeout=10)
    assert asyncio.run(once()).stdout == "hello\n" and pool.started == 2
    (host,) = pool._idle
    second = waiting(host)
    assert len(second) == 2, second
    pool.close()  # the pool closes with a child waiting
    time.sleep(0.2)
    assert not [p for p in first + second if Path(f"/proc/{p}").exists()]


DAEMON = '''
import os, subprocess, sys
found = 0
for pid in os.listdir("/proc"):
    try:
        found += pid.isdigit() and b"warm-daemon" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        pass
print("found", found, flush=True)
subprocess.Popen([sys.executable, "-c", "import os, time\\nos.setsid()\\nwhile True:\\n    time.sleep(0.002)",
                  "warm-daemon"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
'''


def test_a_daemon_is_dead_before_the_next_child_starts_though_its_evaluation_was_answered_first(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    script = _script(tmp_path, DAEMON)

    async def scenario():
        return [await pool.run(script, prepare=lambda work: [], timeout_s=10, limits=LimitsConfig()) for _ in range(6)]

    runs = asyncio.run(scenario())
    assert [r.stdout for r in runs] == ["found 0\n"] * 6 and all(r.returncode == 0 for r in runs)
    assert pool.started == 1, pool.dropped
    pool.close()
    time.sleep(0.2)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and b"warm-daemon" in _cmdline(p)]


def test_exit_codes_and_signals_are_reported_whatever_the_child_says_on_its_status_pipe(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    cases = {
        "import sys\nsys.exit(3)\n": (3, None),
        "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n": (-11, 11),
        # It writes "0" where the child says its exit code, then dies by a signal, or exits otherwise.
        "import os, signal\nos.write(3, b'0\\n')\nos.kill(os.getpid(), signal.SIGKILL)\n": (-9, 9),
        "import os, signal, time\nif os.fork() == 0:\n    os.write(3, b'0\\n')\n    os._exit(0)\n"
        "time.sleep(0.2)\nos.kill(os.getpid(), signal.SIGABRT)\n": (-6, 6),
        "import os\nos.write(3, b'0\\n')\nos._exit(5)\n": (5, None),
    }

    async def scenario():
        return [await pool.run(_script(tmp_path, text), prepare=lambda work: [], timeout_s=10, limits=LimitsConfig())
                for text in cases]

    for res, (rc, sig) in zip(asyncio.run(scenario()), cases.values(), strict=True):
        assert res is not None and (res.returncode, res.signal) == (rc, sig), res
    assert pool.started == 1, pool.dropped
    pool.close()


FORGED_STATUS = '''
import os, signal, sys
frame = sys._getframe()
while frame is not None and "token" not in frame.f_locals:  # the host's token, read from the child's own frames
    frame = frame.f_back
os.write(3, frame.f_locals["token"] + b" 0\\n")  # "exit 0", in the very words the host expects
os.kill(os.getpid(), signal.SIG%s)
'''


def test_a_child_that_learns_the_status_token_still_cannot_hide_a_death_by_signal(tmp_path: Path) -> None:
    # The token only keeps a library that happens to write to descriptor 3 from passing for the child; the
    # candidate can read it. What stands is /proc: a child exiting by a signal is never taken at its word.
    pool = _pool(tmp_path)

    async def scenario():
        return [await pool.run(_script(tmp_path, FORGED_STATUS % sig), prepare=lambda work: [], timeout_s=10,
                               limits=LimitsConfig()) for sig in ("SEGV", "KILL", "ABRT")]

    results = asyncio.run(scenario())
    assert [(r.returncode, r.signal) for r in results] == [(-11, 11), (-9, 9), (-6, 6)], results
    honest = asyncio.run(pool.run(_script(tmp_path, "print('ok')\n"), prepare=lambda work: [], timeout_s=10,
                                  limits=LimitsConfig()))
    assert honest.returncode == 0 and honest.stdout == "ok\n"
    pool.close()
