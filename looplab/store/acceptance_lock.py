"""The acceptance lock: one new incumbent at a time across every loop sharing an experiment.

A backend supplies a non-blocking try/release of its cross-process lock (an fcntl file lock next to
the SQLite file, a PostgreSQL advisory lock); this wraps it with an in-process guard and polling, so
it works as `with` in a thread and as `async with` in the event loop without blocking the loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

FIRST_WAIT_S = 0.01
MAX_WAIT_S = 0.2  # acceptance is rare and short; polling at this rate costs nothing


class CrossProcessLock(Protocol):
    """A backend's lock between processes: non-blocking try, and release by the holder."""

    def try_acquire(self) -> bool: ...
    def release(self) -> None: ...


class AcceptanceLock:
    """Exclusive across threads, coroutines and processes; not reentrant."""

    def __init__(self, guard: threading.Lock, try_acquire: Callable[[], bool], release: Callable[[], None]):
        self._guard = guard  # one holder per Store: PostgreSQL session locks are reentrant per session
        self._try_acquire = try_acquire
        self._release = release

    def _try(self) -> bool:
        if not self._guard.acquire(blocking=False):
            return False
        try:
            ok = self._try_acquire()
        except BaseException:
            self._guard.release()
            raise
        if not ok:
            self._guard.release()
        return ok

    def __enter__(self) -> AcceptanceLock:
        wait = FIRST_WAIT_S
        while not self._try():
            time.sleep(wait)
            wait = min(2 * wait, MAX_WAIT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._release()
        finally:
            self._guard.release()

    async def __aenter__(self) -> AcceptanceLock:
        wait = FIRST_WAIT_S
        while not self._try():
            await asyncio.sleep(wait)
            wait = min(2 * wait, MAX_WAIT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)


class FileLock:
    """An exclusive flock on a file; the kernel drops it when the holder dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
