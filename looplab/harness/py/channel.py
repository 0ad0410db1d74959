"""The supervisor's handle on one worker: fork it, wait for the candidate to load, time calls, end it.

A worker (forked by the zygote, see zygote.py) has two pipes (commands in, replies out),
/dev/null as stdin, stdout and stderr (it has no way to the run's log: nothing it sees, holdout
inputs included, can reach a report or a prompt) and an empty environment. A call's timed window
runs from just before the inputs are written to just after the last byte of the reply is read, so
nothing the worker could do ahead of time or leave for later escapes it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from looplab.harness.py.zygote import Zygote, ZygoteGone, kill

HEADER = 4
_LOADING = "while loading the candidate"


class CaseFailed(Exception):
    """The candidate failed this case; `failure` classes it for looplab (crash, timeout, invalid)."""

    def __init__(self, error: str, failure: str = "invalid"):
        super().__init__(error)
        self.error, self.failure = error, failure


@dataclass
class Timed:
    reply: bytes
    wall_ns: int  # the supervisor's own clock over the whole exchange
    cpu_ns: int  # the worker's kernel-accounted CPU time (all its threads) over the same exchange


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class Worker:
    """One worker process holding the candidate, for one case."""

    def __init__(self, zygote: Zygote, timeout_s: float, reply_cap: int):
        """Fork a worker, which loads the candidate at once; wait_loaded() waits for it to be ready."""
        self.zygote, self.timeout_s, self.reply_cap = zygote, timeout_s, reply_cap
        self.pid, self._cmd, self._reply = zygote.fork(timeout_s)
        self._deadline = time.monotonic() + timeout_s
        self._ended: int | None = None  # the wait status, once reaped
        os.set_blocking(self._cmd, False)
        os.set_blocking(self._reply, False)
        self._clock = ((~self.pid) << 3) | 2  # the worker's process CPU clock (CPUCLOCK_SCHED)
        self._loaded = False

    def wait_loaded(self) -> None:
        """Return once the candidate is loaded in the confined worker; CaseFailed (worker ended) if not."""
        if self._loaded:
            return
        try:
            reply = decode(self._receive(self._deadline, _LOADING), _LOADING)
            if reply.get("loaded") is not True:
                if "error" in reply:
                    raise CaseFailed(str(reply["error"])[:500], "crash")
                raise CaseFailed(f"the worker answered {repr(reply)[:60]} {_LOADING}")
            self._check_confined()
        except CaseFailed:
            self.close()
            raise
        self._loaded = True

    def _check_confined(self) -> None:
        """Trust, but verify from outside: the filter is in force and nothing runs beside it."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return  # no /proc: the worker's own report stands
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Seccomp", "2").strip() != "2":
            raise CaseFailed("the worker is not confined (seccomp filter missing)", "crash")
        if int(fields.get("Threads", "1")) != 1:
            raise CaseFailed(f"the worker runs {fields['Threads'].strip()} threads (single thread only)")

    def call(self, batch: bytes, call: int) -> Timed:
        """Send one batch and wait for its reply, timed; CaseFailed when the worker misbehaves."""
        self.wait_loaded()
        when = f"during call {call}"
        if select.select([self._reply], [], [], 0)[0]:
            raise CaseFailed(f"the worker wrote a reply before call {call} was sent")
        deadline = time.monotonic() + self.timeout_s
        cpu0 = self._cpu(when)
        t0 = time.perf_counter_ns()
        self._send(batch, deadline, when)
        reply = self._receive(deadline, when)
        t1 = time.perf_counter_ns()
        return Timed(reply, t1 - t0, self._cpu(when) - cpu0)

    def _cpu(self, when: str) -> int:
        try:
            return time.clock_gettime_ns(self._clock)
        except OSError:
            raise self._died(when) from None

    def _send(self, payload: bytes, deadline: float, when: str) -> None:
        view = memoryview(len(payload).to_bytes(HEADER, "little") + payload)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timeout(when)
            if not select.select([], [self._cmd], [], left)[1]:
                continue
            try:
                view = view[os.write(self._cmd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise self._died(when) from None

    def _receive(self, deadline: float, when: str) -> bytes:
        size = int.from_bytes(self._read(HEADER, deadline, when), "little")
        if size > self.reply_cap:
            raise CaseFailed(f"the worker's reply {when} is {size} bytes, over the {self.reply_cap}-byte cap")
        return self._read(size, deadline, when)

    def _read(self, n: int, deadline: float, when: str) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timeout(when)
            if not select.select([self._reply], [], [], left)[0]:
                continue
            try:
                chunk = os.read(self._reply, n - len(buf))
            except BlockingIOError:
                continue
            if not chunk:
                raise self._died(when)
            buf += chunk
        return bytes(buf)

    def _timeout(self, when: str) -> CaseFailed:
        self.close()
        return CaseFailed(f"no answer within {self.timeout_s:g} s {when}", "timeout")

    def _died(self, when: str) -> CaseFailed:
        try:
            status, killed = self.zygote.reap(self.pid, grace_s=2)
        except ZygoteGone as e:
            return CaseFailed(f"the worker ended {when}, and {e}", "crash")
        self._ended = status
        if killed:
            return CaseFailed(f"the worker closed its pipes {when}", "crash")
        rc = os.waitstatus_to_exitcode(status)
        if rc < 0:
            hint = " (a forbidden system call)" if -rc == signal.SIGSYS else ""
            return CaseFailed(f"worker killed by {_signal_name(-rc)}{hint} {when}", "crash")
        return CaseFailed(f"worker exited with code {rc} {when} (exit inside the target?)", "crash")

    def close(self) -> None:
        """Kill the worker (if still running) and reap it; idempotent."""
        for fd in (self._cmd, self._reply):
            if fd >= 0:
                os.close(fd)
        self._cmd = self._reply = -1
        if self._ended is None:
            kill(self.pid)
            try:
                self._ended = self.zygote.reap(self.pid, grace_s=2)[0]
            except ZygoteGone:
                self._ended = -1


def decode(payload: bytes, what: str) -> dict:
    """A worker's reply: a JSON object, read defensively (its content is untrusted)."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CaseFailed(f"the worker's reply {what} is not valid JSON: {payload[:60]!r}") from None
    if not isinstance(obj, dict):
        raise CaseFailed(f"the worker's reply {what} is not a JSON object: {payload[:60]!r}")
    return obj
