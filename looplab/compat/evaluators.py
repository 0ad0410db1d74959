"""How an evaluator file runs: in the sandbox, its folder (a private copy) as working directory, called the
way its tool calls it (OpenEvolve: evaluate(program_path) or a cascade; Shinka: evaluate.py's command line),
printing one protocol line for the case "score".
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from looplab.compat import calls
from looplab.config import EvaluateConfig, Experiment
from looplab.evaluation.build import private_paths

RUNNERS = Path(__file__).parent / "runners"
STANDINS = Path(__file__).parent / "standins"
GRACE_S = 30.0  # the sandbox's own deadline beyond the runner's per-call timeouts
LINK_ABOVE = 1 << 20  # larger files are linked (read-only in the sandbox), not copied
_NEVER = {"__pycache__", ".git"}


def sandbox_timeout_s(evaluate: EvaluateConfig) -> float:
    """The whole evaluation's deadline: each call has timeout_s (the runner ends it), plus a grace."""
    return evaluate.timeout_s * calls(evaluate.cascade) + GRACE_S


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


def argv(exp: Experiment, workdir: Path, candidate: Path, nonce: str) -> list[str]:
    """The command that runs the experiment's evaluator on candidate inside workdir (a workspace() copy)."""
    cfg = exp.config.evaluate
    evaluator = str(workdir / cfg.evaluator)
    if cfg.evaluator_style == "shinka":
        return [sys.executable, "-I", str(RUNNERS / "shinka_runner.py"), evaluator, str(candidate), nonce,
                str(cfg.timeout_s), str(STANDINS)]
    return [sys.executable, "-I", str(RUNNERS / "openevolve_runner.py"), evaluator, str(candidate), nonce,
            str(cfg.timeout_s), json.dumps(cfg.cascade), str(STANDINS)]
