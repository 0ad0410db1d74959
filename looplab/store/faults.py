"""Store and disk faults as one line a person can act on: what happened to which file, and the fix.

A corrupt, locked, read-only or full store (and a disk that fills up under runs/ or the renderings)
is not a bug of looplab nor of the candidate: the run stops with exit code 2 and says what to do.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from looplab.errors import UserError

BUSY_ENV = "LOOPLAB_STORE_BUSY_S"  # how long a write waits for another process's lock (default 30 s)
DEFAULT_BUSY_S = 30.0
AFTER_FAULT_BUSY_S = 2.0  # once the store is known to be stuck, last records try only briefly


class StoreError(UserError):
    """The store cannot be read or written; `kind` says why (corrupt, locked, read-only, full, io)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def busy_timeout_s() -> float:
    try:
        value = float(os.environ.get(BUSY_ENV, DEFAULT_BUSY_S))
    except ValueError:
        raise UserError(f"${BUSY_ENV}: not a number of seconds (fix: unset it or give e.g. 30)") from None
    return max(0.1, value)


def holders(path: Path) -> list[str]:
    """Other processes on this host that have the store (or its WAL) open: 'pid N (command)'."""
    names = {str(path.resolve()), *(str(path.resolve()) + s for s in ("-wal", "-shm", "-journal"))}
    found = []
    for pid in filter(str.isdigit, _listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        for fd in _listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in names:
                found.append(f"pid {pid} ({_command(pid)})")
                break
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _command(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    text = " ".join(w for w in words if w)
    return text[:80] + ("…" if len(text) > 80 else "")


def store_fault(path: Path, exc: sqlite3.Error) -> StoreError | None:
    """The one-line StoreError for a fault of the store's file; None for errors of looplab's own SQL."""
    text = str(exc).lower()
    where = str(path)
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return None
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            f"{where}: the store is damaged ({exc}) (fix: keep a copy, then try "
            f"`sqlite3 {where} .recover | sqlite3 {where}.recovered` and move that into place; or move the "
            "file aside and start again with `looplab seed EXP --from-winner HASH`: winners/ holds every "
            "winner's source and runs/*/result.json every attempt's record, so copy runs/ first)", "corrupt")
    if "locked" in text or "busy" in text:
        who = holders(path)
        held = f"it is open in {', '.join(who)}" if who else "no other process on this host has it open"
        return StoreError(
            f"{where}: the store stayed locked by another process for {busy_timeout_s():g}s; {held} "
            f"(fix: end that process's open transaction, e.g. quit the sqlite3 shell, then run again; "
            f"${BUSY_ENV} sets the wait)", "locked")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return StoreError(
            f"{where}: the store cannot be written ({exc}) (fix: make {path.parent} and the files in it "
            "writable for this user, or copy the experiment somewhere writable)", "readonly")
    if "full" in text:
        return StoreError(
            f"{where}: no space left for the store ({exc}) (fix: free space on that file system, then run "
            "again; every finished attempt is kept)", "full")
    if "disk i/o" in text or "i/o error" in text:
        return StoreError(f"{where}: the store could not be read or written ({exc}) (fix: check the disk and "
                          "the file system, then run again)", "io")
    return None


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Re-raise a fault of the store's file as its StoreError (other SQLite errors pass unchanged)."""
    try:
        yield
    except sqlite3.Error as e:
        fault = store_fault(path, e)
        if fault is None:
            raise
        raise fault from None
    except PermissionError as e:
        raise StoreError(f"{path}: the store cannot be created or opened ({e.strerror}) (fix: make "
                         f"{path.parent} writable for this user)", "readonly") from None


def disk_fault(exc: BaseException, root: Path) -> UserError | None:
    """A full or read-only disk under the experiment (runs/, renderings, winners/) as one line; else None."""
    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    where = exc.filename or root
    inside = bool(exc.filename) and Path(os.path.abspath(exc.filename)).is_relative_to(root.resolve())
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return UserError(f"{where}: no space left on the device (fix: free space on that file system, then run "
                         "again; the store keeps every finished attempt)")
    if exc.errno == errno.EROFS or (exc.errno in (errno.EACCES, errno.EPERM) and inside):
        return UserError(f"{where}: cannot write ({exc.strerror}) (fix: make the experiment folder writable for "
                         "this user, or copy it somewhere writable)")
    return None
