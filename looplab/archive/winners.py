"""Winners on disk and in git: the live incumbent file, winners/<commit>.<ext>, and `looplab seed`.

Git commits touch only looplab's own paths (never the user's other staged or unstaged work),
and winners/ and git history survive a reset.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from looplab import filesets, layout
from looplab.archive.git_lock import clear_stale_lock, run_git
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.filesets import write_atomic

# Variables that would point git at some other repository or index than the experiment's.
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY")
LOCK_RETRIES = 10  # another loop committing in the same repository holds index.lock briefly
TRAILER = "Looplab-Acceptance"  # names the acceptance a commit belongs to, so a restart can find it


def incumbent_path(experiment: Experiment) -> Path:
    """The live file holding the current best implementation."""
    return experiment.root / layout.incumbent_name(experiment.ext)


def _git(root: Path, *args: str, identity: tuple[str, ...] = (), noted: bool = False) -> subprocess.CompletedProcess:
    """git -C root ARGS; noted: it may take the index lock, so a dead one can be recovered (git_lock)."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env["GIT_TERMINAL_PROMPT"] = "0"
    argv = ["git", *identity, "-C", str(root), *args]
    if noted:
        return run_git(argv, env=env, root=root)
    return subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)


def in_git_work_tree(root: Path) -> bool:
    try:
        r = _git(root, "rev-parse", "--is-inside-work-tree")
    except FileNotFoundError:  # no git installed: archive without commits
        return False
    return r.returncode == 0 and r.stdout.strip() == "true"


def _identity(root: Path) -> tuple[str, ...]:
    """-c flags for an unset user.name / user.email, so commits work on a fresh machine."""
    flags: tuple[str, ...] = ()
    for key, value in (("user.name", "looplab"), ("user.email", "looplab@localhost")):
        if _git(root, "config", key).returncode != 0:
            flags += ("-c", f"{key}={value}")
    return flags


def _committable(root: Path, names: list[str]) -> list[str]:
    """Existing paths the user has not told git to ignore."""
    present = [n for n in names if (root / n).exists()]
    return [n for n in present if _git(root, "check-ignore", "-q", "--", n).returncode != 0]


def index_lock(root: Path) -> Path:
    r = _git(root, "rev-parse", "--git-path", "index.lock")
    path = Path(r.stdout.strip() or ".git/index.lock")
    return path if path.is_absolute() else (root / path).resolve()


def recover_index_lock(root: Path) -> str | None:
    """Remove an index.lock a dead git of looplab's left (see git_lock); a note when one was removed."""
    return clear_stale_lock(root, index_lock(root))


def _commit(root: Path, paths: list[str], message: str) -> str:
    """Commit exactly `paths` (--only leaves the user's other staged changes staged); short hash."""
    identity = _identity(root)
    for args in (("add", "--", *paths), ("commit", "--allow-empty", "-q", "-m", message, "--only", "--", *paths)):
        for attempt in range(LOCK_RETRIES):
            r = _git(root, *args, identity=identity, noted=True)
            if r.returncode == 0 or "index.lock" not in r.stderr or attempt == LOCK_RETRIES - 1:
                break
            if recover_index_lock(root) is None:
                time.sleep(0.5)
        if r.returncode != 0:
            detail = " ".join((r.stderr or r.stdout).split())[:300]
            raise UserError(
                f"{root}: git {args[0]} failed: {detail} (fix: resolve it in the repository, "
                "e.g. a rejecting pre-commit hook or commit signing, or run outside git)"
            )
    return _git(root, "rev-parse", "--short", "HEAD").stdout.strip()


def find_commit(root: Path, key: str) -> str | None:
    """Short hash of the commit that carries acceptance `key` in its trailer, if one was made."""
    r = _git(root, "log", "-n", "1", "-F", f"--grep={TRAILER}: {key}", "--format=%h")
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def has_commit(root: Path, commit: str) -> bool:
    """True when `commit` is a commit of root's repository (a shared store also holds other checkouts')."""
    return _git(root, "rev-parse", "-q", "--verify", f"{commit}^{{commit}}").returncode == 0


def archive_winner(experiment: Experiment, *, source: str, attempt_id: int, message: str, key: str | None = None,
                   write_incumbent: bool = True, resume: bool = False) -> str:
    """Write winners/H.<ext> (and the live incumbent when write_incumbent); in a git work tree commit. Returns H.

    In git: commit 1 holds incumbent.<ext> (when written) and SCORES/MEMORY with `message` and the
    trailer naming `key`; H is its short hash; commit 2 adds winners/H.<ext>. Outside git (or when
    git ignores all of looplab's files): H = sha256(source)[:12] and nothing is committed.
    resume: an earlier try may have got part way (the process died): reuse its commit, skip what is done.
    """
    root = experiment.root
    key = key or secrets.token_hex(8)
    live = incumbent_path(experiment)
    if write_incumbent:
        filesets.save(live, source, as_files=experiment.is_files)
    experiment.winners_dir.mkdir(parents=True, exist_ok=True)
    names = [live.name, *layout.RENDERINGS] if write_incumbent else list(layout.RENDERINGS)
    paths = _committable(root, names) if in_git_work_tree(root) else []
    if not paths:
        digest = hashlib.sha256(source.encode()).hexdigest()[:12]
        filesets.save(experiment.winners_dir / f"{digest}.{experiment.ext}", source, as_files=experiment.is_files)
        return digest
    if resume:
        recover_index_lock(root)
    commit = (find_commit(root, key) if resume else None) or _commit(root, paths, f"{message}\n\n{TRAILER}: {key}")
    winner = experiment.winners_dir / f"{commit}.{experiment.ext}"
    filesets.save(winner, source, as_files=experiment.is_files)
    rel = str(winner.relative_to(root))
    if _committable(root, [rel]) and _git(root, "status", "--porcelain", "--", rel).stdout.strip():
        _commit(root, [rel], f"looplab: archive winner {commit} (attempt {attempt_id})")
    return commit


def read_winner(experiment: Experiment, path: Path) -> str:
    """A winners/ entry's source: one file, or a files target's folder packed."""
    return filesets.load(path, as_files=experiment.is_files)


def winners(experiment: Experiment) -> list[Path]:
    """Archived winners, oldest first."""
    d = experiment.winners_dir
    files = [p for p in d.iterdir() if (p.is_file() or p.is_dir()) and not p.name.startswith(".")] if d.is_dir() else []
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def find_winner(experiment: Experiment, ref: str) -> Path:
    """The winners/ file named by a commit hash or its prefix (for `seed --from-winner HASH`)."""
    files = winners(experiment)
    key = Path(ref.strip()).name.split(".")[0].lower()
    available = ", ".join(p.stem for p in files[-10:]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
    if not files:
        raise UserError(f"{experiment.winners_dir}: no winners archived yet (fix: run a search first, "
                        "or seed without --from-winner)")
    if not key:
        raise UserError(f"--from-winner: empty reference (fix: pass a commit hash, one of: {available})")
    exact = [p for p in files if p.stem.lower() == key]
    matches = exact or [p for p in files if p.stem.lower().startswith(key)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(p.stem for p in matches)
        raise UserError(f"--from-winner {ref}: ambiguous, matches {names} (fix: give more characters of the hash)")
    raise UserError(f"--from-winner {ref}: no such winner in {experiment.winners_dir} (fix: use one of: {available})")


def reset_live_state(experiment: Experiment) -> list[Path]:
    """Delete the store, runs/ and the renderings; reset incumbent.<ext> to the baseline.

    winners/ and git history are never touched. Returns the paths removed or reset.
    """
    root = experiment.root
    db = experiment.store_path
    done: list[Path] = []
    for path in [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"),
                 *(root / n for n in layout.LIVE_FILES),
                 *(p for n in layout.LIVE_FILES for p in root.glob(f"{n}.*.tmp"))]:
        if path.is_file():
            path.unlink()
            done.append(path)
    if experiment.runs_dir.is_dir():
        shutil.rmtree(experiment.runs_dir)
        done.append(experiment.runs_dir)
    live = incumbent_path(experiment)
    if experiment.is_files and live.is_dir():
        filesets.save(live, experiment.baseline_source, as_files=True)
        done.append(live)
    elif live.is_file() and live.resolve() != experiment.baseline_path.resolve():
        write_atomic(live, experiment.baseline_source)
        done.append(live)
    return done
