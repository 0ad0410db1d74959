"""One machine-wide lock for timing runs: measurements never overlap, across loops and processes.

A file lock (flock) on a well-known path; it is released by the kernel if the holder dies.
Acquisition polls without blocking so a waiting coroutine never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

LOCK_ENV = "LOOPLAB_TIMING_LOCK"


def lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV) or Path(tempfile.gettempdir()) / "looplab-timing.lock")


@asynccontextmanager
async def timing_lock(path: Path | None = None, *, poll_s: float = 0.02) -> AsyncIterator[None]:
    """Hold the machine's timing lock for the duration of the block."""
    # Read-only is enough for flock, so users sharing the machine can share one lock file.
    fd = os.open(path or lock_path(), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(poll_s)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def timing_cpu() -> int | None:
    """The core timing runs are pinned to: the last one this process may use (None if unknown)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return cpus[-1] if cpus else None
