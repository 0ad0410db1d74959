"""The supervisor's side of the zygote: one clean interpreter per run that forks a worker per case.

Starting an interpreter and importing the allowed modules costs about 18 ms; a fork of one that
has done it costs about 1 ms, so every case still gets a fresh process at a twentieth of the price.
The zygote runs only looplab's worker.py (never candidate code), gets the setup once on a pipe and
takes commands on a unix socket: "fork" (answered with the worker's pid and the supervisor's ends
of its two pipes) and "wait PID" (answered with the wait status once that worker has ended).
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from looplab.harness.py import confine
from looplab.harness.py.worker import CMD_FD, REPLY_FD, write_frame

WORKER = Path(__file__).with_name("worker.py")
_RUN_MARK = "LOOPLAB_SANDBOX_RUN"  # lets the sandbox sweep these processes too; carries nothing secret


class ZygoteGone(Exception):
    """The zygote cannot fork or answer (it died, or could not start)."""


class Zygote:
    def __init__(self, source: bytes, target: str, imports: list[str]):
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        setup_r, setup_w = os.pipe()
        env = {_RUN_MARK: os.environ[_RUN_MARK]} if _RUN_MARK in os.environ else {}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(WORKER), str(setup_r), str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(setup_r, theirs.fileno()), env=env)
        finally:
            os.close(setup_r)
            theirs.close()
        setup = {"source": source, "target": target, "imports": imports, "path": [p for p in sys.path if p],
                 "bpf": confine.worker_filter(CMD_FD, REPLY_FD), "seccomp": confine.seccomp_syscall()}
        try:
            write_frame(setup_w, marshal.dumps(setup))
        except OSError as e:
            self.close()
            raise ZygoteGone(f"the zygote did not take its setup: {e}") from None
        finally:
            os.close(setup_w)

    def fork(self, timeout_s: float) -> tuple[int, int, int]:
        """A new worker: (pid, fd to write its commands, fd to read its replies)."""
        try:
            self._sock.settimeout(timeout_s)
            self._sock.send(b"fork")
            msg, fds, _, _ = socket.recv_fds(self._sock, 64, 2)
            if len(fds) != 2:
                raise OSError("no pipes in the zygote's answer")
            return int(msg), fds[0], fds[1]
        except (OSError, ValueError) as e:
            raise ZygoteGone(f"the zygote could not start a worker: {e}") from None

    def reap(self, pid: int, grace_s: float) -> tuple[int, bool]:
        """(wait status, whether it had to be killed) of a worker that should be ending by itself."""
        try:
            self._sock.settimeout(grace_s)
            self._sock.send(f"wait {pid}".encode())
            try:
                return int(self._sock.recv(64)), False
            except TimeoutError:
                kill(pid)
                self._sock.settimeout(10)
                return int(self._sock.recv(64)), True
        except (OSError, ValueError) as e:
            raise ZygoteGone(f"the zygote could not reap worker {pid}: {e}") from None

    def close(self) -> None:
        self._sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
