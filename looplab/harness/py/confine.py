"""The worker's seccomp allowlist, compiled in the supervisor; and the supervisor's own hardening.

The supervisor builds the filter with libseccomp (pyseccomp) and sends the raw BPF program to the
worker, which installs it before any candidate code runs. Assume the candidate can make any
system call with any arguments (ctypes, or a bytecode exploit): this filter is the boundary.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from functools import cache
from types import ModuleType

PROT_EXEC = 0x4
# Pure Python needs memory, signals' bookkeeping, clocks, entropy and exit; nothing reaches out.
_ALLOWED = (
    "brk", "munmap", "mremap", "madvise", "close",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "restart_syscall",
    "futex", "clock_gettime", "clock_getres", "gettimeofday", "getrandom", "getpid", "gettid",
    "exit", "exit_group",
)
# Clearly hostile: the worker dies on the spot (SIGSYS) instead of getting an error to catch.
_KILLED = (
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal",
    "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev", "execve", "execveat",
)


_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


@cache
def _pyseccomp() -> ModuleType:
    """pyseccomp, imported without its two `ldconfig -p` runs (30 ms of every evaluation)."""
    found = ctypes.util.find_library

    def find(name: str) -> str | None:
        if name in _SONAMES:
            try:
                ctypes.CDLL(_SONAMES[name])
                return _SONAMES[name]
            except OSError:
                pass
        return found(name)

    ctypes.util.find_library = find
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = found
    return pyseccomp


@cache
def worker_filter(cmd_fd: int, reply_fd: int) -> bytes:
    """BPF for a worker that reads commands on cmd_fd and writes replies on reply_fd (and logs to 2).

    Everything not listed fails with EPERM, so Python raises cleanly: open/openat, clone/clone3/fork
    ("can't start new thread"), socket, pipe, dup, fcntl, ioctl, prctl, setrlimit, mmap/mprotect
    with PROT_EXEC, io_uring, bpf, perf_event_open, ...
    """
    sc = _pyseccomp()
    f = sc.SyscallFilter(sc.ERRNO(errno.EPERM))
    f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # x32 or int 0x80: another syscall table, no entry
    for name in _ALLOWED:
        f.add_rule(sc.ALLOW, name)
    for name in ("mmap", "mprotect"):  # no new executable memory
        f.add_rule(sc.ALLOW, name, sc.Arg(2, sc.MASKED_EQ, PROT_EXEC, 0))
    f.add_rule(sc.ALLOW, "read", sc.Arg(0, sc.EQ, cmd_fd))
    for fd in (1, 2, reply_fd):  # 1 and 2 are /dev/null: prints go nowhere
        f.add_rule(sc.ALLOW, "write", sc.Arg(0, sc.EQ, fd))
    for name in _KILLED:
        f.add_rule(sc.KILL_PROCESS, name)
    r, w = os.pipe()
    try:
        f.export_bpf(_Fd(w))
        os.close(w)
        w = -1
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return b"".join(chunks)


@cache
def seccomp_syscall() -> int:
    """The seccomp(2) number on this machine (the worker installs with it, to sync every thread)."""
    sc = _pyseccomp()
    return sc.resolve_syscall(sc.Arch.NATIVE, "seccomp")


class _Fd:
    """What export_bpf writes to: anything with fileno()."""

    def __init__(self, fd: int):
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def protect_supervisor() -> None:
    """Not dumpable: a process of the same uid can neither ptrace it nor read its memory via /proc."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
