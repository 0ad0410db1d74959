"""Who runs an attempt (host, pid, start token), and whether that loop is certainly gone.

Several loops may share one experiment, so a loop that starts must not mark another live loop's
in-flight attempts interrupted. Only a loop on this host whose process is gone (or whose pid now
belongs to a newer process) is certainly dead; a loop on another host is never presumed dead.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    token: str  # "<process start time in clock ticks>.<random>": tells a reused pid from the original


def _stat(pid: int) -> list[str]:
    """Fields 3.. of /proc/PID/stat (state, ppid, ...); [] where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return stat[stat.rfind(")") + 2:].split()


def start_ticks(pid: int) -> str:
    """The process's start time since boot (field 22), "" when unknown."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def this_process() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, f"{start_ticks(pid)}.{secrets.token_hex(6)}")


def is_dead(host: str | None, pid: int | None, token: str | None) -> bool:
    """True only when the owner is certainly not running: same host, and its process is gone."""
    if not host or pid is None:
        return True  # rows from before owners were recorded: the old rule (interrupt) applies
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    fields = _stat(int(pid))
    if fields and fields[0] in ("Z", "X"):
        return True  # exited, not yet reaped by its parent
    started = (token or "").split(".")[0]
    now = fields[19] if len(fields) > 19 else ""
    return bool(started and now and started != now)  # the pid was reused by a newer process
