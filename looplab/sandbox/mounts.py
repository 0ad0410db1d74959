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
_ATOMIC_TMP = re.compile(r".+\.\d+\.[0-9a-f]{8}\.tmp")  # filesets.write_atomic's file in progress


def _empty_file() -> str:
    # Not /dev/null: bwrap's binds are nodev, so a device node there cannot be opened.
    if not _EMPTY or not os.path.isfile(_EMPTY[0]):  # made again if someone cleaned /tmp
        fd, path = tempfile.mkstemp(prefix="looplab-empty-")
        os.close(fd)
        os.chmod(path, 0o644)
        atexit.register(lambda: os.path.exists(path) and os.unlink(path))
        _EMPTY[:] = [path]
    return _EMPTY[0]


_CACHE: dict[tuple, list[str]] = {}
_SENTINEL = "looplab-workdir-0f3c9a"  # stands for the working directory's own name in a cached argv


def bwrap_argv(workdir: Path, readonly: Sequence[Path], hidden: Sequence[Path], as_root: bool,
               shadow: Sequence[Path] = ()) -> list[str]:
    """The bwrap command line up to `--`, cached: runs differ only in their working directory's name,
    and a cached argv is reused while the folders that hold hidden files list the same entries."""
    workdir = Path(workdir)
    folders = sorted({Path(h).parent for h in hidden} | {Path(d) for d in shadow})
    key = (str(workdir.parent), tuple(map(str, readonly)), tuple(map(str, hidden)), as_root,
           tuple(map(str, shadow)), tuple(_listing(d) for d in folders))
    cached = _CACHE.get(key)
    if cached is None or (_EMPTY and not os.path.isfile(_EMPTY[0])):
        if len(_CACHE) > 64:
            _CACHE.clear()
        cached = _CACHE[key] = _bwrap_argv(workdir.parent / _SENTINEL, readonly, hidden, as_root, shadow)
    here, mine = str(workdir.parent / _SENTINEL), str(workdir)
    return [mine if a == here else a.replace(here + "/", mine + "/") if a.startswith(here + "/") else a
            for a in cached]


def _listing(folder: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(e.name for e in os.scandir(folder) if not _ATOMIC_TMP.fullmatch(e.name)))
    except OSError:
        return ()


def _bwrap_argv(workdir: Path, readonly: Sequence[Path], hidden: Sequence[Path], as_root: bool,
                shadow: Sequence[Path]) -> list[str]:
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
    binds[Path("/tmp")] = binds[Path("/dev/shm")] = "tmpfs"
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
    _shadow_parents(mounts, binds, [Path(h) for h in hidden], [Path(d) for d in shadow])
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


def _shadow_parents(mounts: dict[Path, str], binds: dict[Path, str], hidden: list[Path],
                    shadow: list[Path]) -> None:
    """A folder holding hidden files becomes a tmpfs with its other entries bound one by one.

    A file bound over a hidden one would be unbound by the next atomic rewrite (a rename over it) and
    the new SCORES.json would show through; the hidden files here are empty files on the tmpfs
    instead, which nothing outside can replace. looplab's half-written temporaries stay out. A `shadow`
    folder is rebuilt so even when it holds no hidden file yet: what is written there later (SCORES.json,
    incumbent.py) never shows in a sandbox that lives longer than one run.
    """
    parents = {h.parent for h in hidden
               if mounts.get(h) == "empty" and _enclosing(h.parent, {**binds, **mounts}) == "ro"}
    parents |= {d for d in shadow if d.is_dir()}
    for d in parents:
        mounts[d] = "shadow"
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            path = Path(entry.path)
            if path in mounts or _ATOMIC_TMP.fullmatch(entry.name):
                continue
            mounts[path] = "symlink" if entry.is_symlink() else "ro-try"
