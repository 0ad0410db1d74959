"""Git runs that can be recovered from: a git that looplab started and that died (a kill -9 of the run
with its process group, the OOM killer) leaves `.git/index.lock` behind, and every later commit fails.

Each git that may take the index lock is noted in `.looplab/git.json` while it runs. A lock is removed
only when the git noted there is gone and no git process on this host works in the repository (a
person's `git commit` waiting in an editor holds the same lock and is never touched).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from looplab import layout
from looplab.filesets import write_atomic
from looplab.store.owner import is_dead, start_ticks

GIT_TIMEOUT_S = 120.0  # a hook slower than this fails the commit
ORPHAN_WAIT_S = 60.0  # a noted git still running (its looplab died) is given this long to finish


def record_path(root: Path) -> Path:
    return root / layout.STATE_DIR / layout.GIT_NOTE


def run_git(argv: list[str], *, env: dict[str, str], root: Path) -> subprocess.CompletedProcess:
    """Run one git command, noted in record_path(root) until it ends (kept if a signal killed it)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=env)
    record = record_path(root)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        note = {"host": socket.gethostname(), "pid": proc.pid, "token": f"{start_ticks(proc.pid)}.git",
                "started": time.time()}
        write_atomic(record, json.dumps(note))
    except OSError:
        record = None  # a full or read-only disk: the commit below reports the real problem
    try:
        out, err = proc.communicate(timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if record is not None and proc.returncode >= 0:
        record.unlink(missing_ok=True)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def clear_stale_lock(root: Path, lock: Path) -> str | None:
    """Remove `lock` when a git noted by looplab left it and nothing holds it now; a note of what was done."""
    record = record_path(root)
    try:
        note = json.loads(record.read_text())
    except (OSError, ValueError):
        return None  # no git of looplab's is known to have died here
    host, pid, token = note.get("host"), note.get("pid"), note.get("token")
    if host != socket.gethostname():
        return None
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while not is_dead(host, pid, token) and time.monotonic() < deadline:
        time.sleep(0.1)  # its looplab died, the git (say, in a slow hook) still runs: let it finish
    if not is_dead(host, pid, token):
        return None
    removed = None
    try:
        stale = lock.stat().st_mtime >= float(note.get("started", 0)) - 2.0
    except OSError:
        stale = False
    if stale and not live_git_in(root):
        lock.unlink(missing_ok=True)
        removed = f"removed {lock}, left by a git (pid {pid}) that looplab started and that died"
    record.unlink(missing_ok=True)
    return removed


def live_git_in(root: Path) -> list[int]:
    """Pids of git processes on this host whose working directory is inside root's repository."""
    top = _toplevel(root)
    found = []
    for pid in filter(str.isdigit, _listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "git":
                    continue
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if cwd.is_relative_to(top):
            found.append(int(pid))
    return found


def _toplevel(root: Path) -> Path:
    r = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    return Path(r.stdout.strip()).resolve() if r.returncode == 0 and r.stdout.strip() else root.resolve()


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
