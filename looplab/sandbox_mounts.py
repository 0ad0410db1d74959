"""The filesystem a bwrap sandbox sees: a read-only system, the read-only paths it was given, one
writable working directory, a private /tmp, and looplab's own files hidden (empty files and folders).

A folder holding hidden files is rebuilt on a tmpfs from its other entries, never bound over file by
file: looplab rewrites SCORES.json and the like by renaming over them, and a rename over a bind
mount's target unbinds it in the sandbox (the new file would show through).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
_ETC_FILES = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
              "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf")

_EMPTY: list[str] = []
_ATOMIC_TMP = re.compile(r".+\.\d+\.[0-9a-f]{8}\.tmp")  # memory.write_atomic's file in progress


def _empty_file() -> str:
    # Not /dev/null: bwrap's binds are nodev, so a device node there cannot be opened.
    if not _EMPTY or not os.path.isfile(_EMPTY[0]):  # made again if someone cleaned /tmp
        fd, path = tempfile.mkstemp(prefix="looplab-empty-")
        os.close(fd)
        os.chmod(path, 0o644)
        atexit.register(lambda: os.path.exists(path) and os.unlink(path))
        _EMPTY[:] = [path]
    return _EMPTY[0]


def bwrap_argv(workdir: Path, readonly: Sequence[Path], hidden: Sequence[Path], as_root: bool) -> list[str]:
    if as_root:  # no user namespace, so the launcher can switch to an unprivileged uid
        ns = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        ns = ["--unshare-all"]
    argv = ["bwrap", *ns, "--die-with-parent", "--new-session"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for f in _ETC_FILES:
        argv += ["--ro-bind-try", f, f]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    binds: dict[Path, str] = {Path(d): "bind" for d in (*_SYSTEM_DIRS, "/proc", "/dev")}
    binds[Path("/tmp")] = "tmpfs"
    # The interpreter and its environment (a venv may live under /tmp, which is private here).
    pythons = {sys.base_prefix, sys.prefix, os.path.dirname(sys.executable)}
    mounts: dict[Path, str] = {}
    for p in {Path(os.path.realpath(p)) for p in (*readonly, *pythons)}:
        if p.exists() and not any(p.is_relative_to(d) for d in _SYSTEM_DIRS):
            mounts[p] = "ro"
    for h in map(Path, hidden):  # a hidden folder becomes an empty tmpfs, a hidden file an empty file
        if h.is_dir() or h.is_file():
            mounts[h] = "tmpfs" if h.is_dir() else "empty"
    mounts[workdir] = "rw"
    _shadow_parents(mounts, binds, [Path(h) for h in hidden])
    known = {**binds, **mounts}
    # Parents before children, so a nested mount is not hidden by the one above it; parents that
    # only exist on a tmpfs are created world-readable (bwrap would make them root-only).
    made: set[Path] = set()
    for path, kind in sorted(mounts.items(), key=lambda x: len(x[0].parts)):
        for parent in reversed(path.parents[:-1]):
            if parent not in known and _enclosing(parent, known) in ("tmpfs", "shadow") and parent not in made:
                argv += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        if kind in ("tmpfs", "shadow"):
            argv += ["--perms", "0755", "--tmpfs", str(path)]
        elif kind == "empty":
            argv += ["--ro-bind", _empty_file(), str(path)]
        elif kind == "symlink":
            argv += ["--symlink", os.readlink(path), str(path)]
        else:
            flag = {"ro": "--ro-bind", "ro-try": "--ro-bind-try"}.get(kind, "--bind")
            argv += [flag, str(path), str(path)]
    return argv + ["--chdir", str(workdir), "--"]


def _enclosing(path: Path, known: dict[Path, str]) -> str:
    return next((known[a] for a in (path, *path.parents) if a in known), "tmpfs")


def _shadow_parents(mounts: dict[Path, str], binds: dict[Path, str], hidden: list[Path]) -> None:
    """A folder holding hidden files becomes a tmpfs with its other entries bound one by one.

    A file bound over a hidden one would be unbound by the next atomic rewrite (a rename over it) and
    the new SCORES.json would show through; the hidden files here are empty files on the tmpfs
    instead, which nothing outside can replace. looplab's half-written temporaries stay out.
    """
    parents = {h.parent for h in hidden
               if mounts.get(h) == "empty" and _enclosing(h.parent, {**binds, **mounts}) == "ro"}
    for d in parents:
        mounts[d] = "shadow"
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            path = Path(entry.path)
            if path in mounts or _ATOMIC_TMP.fullmatch(entry.name):
                continue
            mounts[path] = "symlink" if entry.is_symlink() else "ro-try"
