"""How an evaluator file runs: in the sandbox, its folder (a private copy) as working directory, called the
way its tool calls it (OpenEvolve: evaluate(program_path) or a cascade; Shinka: evaluate.py's command line),
printing one protocol line for the case "score".
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import re
import shutil
import sys
import tempfile
from pathlib import Path

from looplab.compat import calls
from looplab.config import EvaluateConfig, Experiment
from looplab.evaluation.build import private_paths

RUNNERS = Path(__file__).parent / "runners"
STANDINS = Path(__file__).parent / "standins"
GRACE_S = 30.0  # the sandbox's own deadline beyond the runner's per-call timeouts
LINK_ABOVE = 1 << 20  # larger files are linked (read-only in the sandbox), not copied
_NEVER = {"__pycache__", ".git"}
_WATCHDOG = re.compile(r"^Timeout \(\d+:\d\d:\d\d(?:\.\d+)?\)!$", re.M)  # faulthandler's, as the OpenEvolve runner arms it
_BYTECODE: dict[tuple, bytes] = {}  # (evaluator, its mtime and size) -> its bytecode, compiled once per process


def sandbox_timeout_s(evaluate: EvaluateConfig) -> float:
    """The whole evaluation's deadline: each call has timeout_s (the runner ends it), plus a grace."""
    return evaluate.timeout_s * calls(evaluate.cascade) + GRACE_S


def watchdog_ended(returncode: int | None, stderr: str) -> bool:
    """The OpenEvolve runner's watchdog ended a call stuck where its timer could not (faulthandler exits 1)."""
    return returncode == 1 and _WATCHDOG.search(stderr) is not None


def workspace(exp: Experiment, dest: Path) -> None:
    """A private, writable copy of the experiment folder at dest, without looplab's own files (store, runs,
    scores, memory, winners, incumbent): relative opens of data files and sibling scripts work."""
    private = {p.name for p in private_paths(exp)}

    def skipped(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == exp.root
        return {n for n in names if n in _NEVER or n.endswith(".pyc") or (top and n in private)}

    def copy(src: str, dst: str) -> None:
        if os.path.getsize(src) > LINK_ABOVE:
            os.symlink(os.path.realpath(src), dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(exp.root, dest, ignore=skipped, copy_function=copy, symlinks=True, dirs_exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(dest):  # writable by the sandbox's throw-away user too
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o777)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o666)
    _write_bytecode(exp.root / exp.config.evaluate.evaluator, dest / exp.config.evaluate.evaluator)


def _write_bytecode(source: Path, copy: Path) -> None:
    """The evaluator's compiled code beside its copy (__pycache__, as Python itself would write it), so that an
    evaluation imports it instead of compiling it; Python checks it against the copy's mtime and size, which
    are the source's (a stale or altered one is compiled again, never used)."""
    try:
        st = source.stat()
        if not copy.is_file() or source.suffix != ".py":
            return
        key = (str(source), st.st_mtime_ns, st.st_size)
        code = _BYTECODE.get(key)
        if code is None:
            with tempfile.TemporaryDirectory() as tmp:
                py_compile.compile(str(source), cfile=os.path.join(tmp, "c.pyc"), doraise=True)
                code = _BYTECODE[key] = Path(tmp, "c.pyc").read_bytes()
        cached = Path(importlib.util.cache_from_source(str(copy)))
        cached.parent.mkdir(mode=0o755, exist_ok=True)
        cached.write_bytes(code)
    except (OSError, py_compile.PyCompileError, ValueError):
        pass  # the evaluation compiles it, as without this


def argv(exp: Experiment, workdir: Path, candidate: Path, nonce: str) -> list[str]:
    """The command that runs the experiment's evaluator on candidate inside workdir (a workspace() copy)."""
    cfg = exp.config.evaluate
    evaluator = str(workdir / cfg.evaluator)
    if cfg.evaluator_style == "shinka":
        return [sys.executable, "-I", str(RUNNERS / "shinka_runner.py"), evaluator, str(candidate), nonce,
                str(cfg.timeout_s), str(STANDINS)]
    return [sys.executable, "-I", str(RUNNERS / "openevolve_runner.py"), evaluator, str(candidate), nonce,
            str(cfg.timeout_s), json.dumps(cfg.cascade), str(STANDINS)]
