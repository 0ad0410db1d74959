"""Build and run shipped experiments' harnesses directly, and call `looplab eval` on copies."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from looplab import harness
from looplab.config import load_experiment

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
CANDIDATES = Path(__file__).resolve().parent / "fixtures" / "candidates"


def build_c(experiment: Path, candidate: Path, workdir: Path) -> Path:
    """Run the experiment's own build command on one candidate; returns the supervisor binary (its worker is
    the binary + ".worker"; raises with gcc's stderr)."""
    proc = try_build_c(experiment, candidate, workdir)
    if proc.returncode != 0:
        raise AssertionError(f"build of {candidate.name} failed:\n{proc.stderr}")
    return workdir / "bench"


def try_build_c(experiment: Path, candidate: Path, workdir: Path) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    command = load_experiment(experiment).config.build.command
    values = {"candidate": candidate, "workdir": workdir, "experiment": experiment, "binary": workdir / "bench",
              **harness.placeholders()}
    for key, value in values.items():
        command = command.replace("{" + key + "}", shlex.quote(str(value)))
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)


def parse(stdout: str, cases: list[str]) -> dict[str, dict]:
    """One JSON object per requested case, in order, and nothing else."""
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert [r["case"] for r in records] == cases, stdout
    return {r["case"]: r for r in records}


def run_c(binary: Path, cases: list[str], seed: int = 1, max_reps: int | None = None) -> dict[str, dict]:
    """Run a C harness's supervisor; max_reps caps the timed samples per case (quick validity checks), and
    seed (a debugging aid of the library) makes the inputs reproducible."""
    extra = ["--max-reps", str(max_reps)] if max_reps else []
    proc = subprocess.run([str(binary), "--seed", str(seed), *extra, *cases], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return parse(proc.stdout, cases)


def run_py(experiment: Path, candidate: Path, cases: list[str], seed: int | None = None,
           max_reps: int | None = None) -> dict[str, dict]:
    """Run a Python harness (looplab's supervisor) as looplab would, under this interpreter ({python});
    inputs come from OS randomness unless a seed is given to reproduce a run."""
    extra = ["--max-reps", str(max_reps)] if max_reps else []
    extra += ["--seed", str(seed)] if seed is not None else []
    proc = subprocess.run(
        [sys.executable, "-I", str(experiment / "harness" / "bench.py"), "--candidate", str(candidate),
         *extra, *cases],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return parse(proc.stdout, cases)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def copy_experiment(name: str, dest: Path, search: list[str] | None = None,
                    holdout: list[str] | None = None, max_reps: int | None = None) -> Path:
    """A private copy (looplab eval writes .looplab/ into the experiment), optionally with fewer
    cases and fewer timed calls per case."""
    copy = dest / name
    shutil.copytree(EXPERIMENTS / name, copy, ignore=shutil.ignore_patterns(".looplab", "runs", "winners"))
    toml = copy / "experiment.toml"
    text = toml.read_text()
    if search is not None:
        text = re.sub(r"(?m)^search = \[.*\]$", "search = " + json.dumps(search), text)
    if holdout is not None:
        text = re.sub(r"(?m)^holdout = \[.*\]$", "holdout = " + json.dumps(holdout), text)
    if max_reps is not None:
        assert text.count(" {cases}\"") == 1
        text = text.replace(" {cases}\"", f" --max-reps {max_reps} {{cases}}\"")
    toml.write_text(text)
    return copy


def looplab_eval(experiment: Path, candidate: Path, timeout: float = 300) -> dict:
    """`looplab eval EXPERIMENT CANDIDATE --json` in a subprocess.

    A private timing lock: these verdicts have wide margins, so they need not queue behind other
    looplab runs on the machine."""
    env = {**os.environ, "LOOPLAB_TIMING_LOCK": str(experiment.parent / "timing.lock")}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from looplab.cli import main; sys.exit(main())",
         "eval", str(experiment), str(candidate), "--json"],
        capture_output=True, text=True, timeout=timeout, cwd=experiment.parent, env=env,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


