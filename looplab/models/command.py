"""A model behind any shell command: the prompt goes to stdin, stdout is the reply (e.g. `llm -m X`)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import shlex
import signal
import time

from looplab.models.base import ModelError
from looplab.records import Message, Reply, Usage

STDERR_TAIL_CHARS = 500
PR_SET_PDEATHSIG = 1


def render_plain(messages: list[Message]) -> str:
    """Messages as one plain-text prompt: bare contents, with role headings only for a conversation."""
    if all(m.role in ("system", "user") for m in messages):
        return "\n\n".join(m.content for m in messages)
    return "\n\n".join(f"## {m.role}\n\n{m.content}" for m in messages)


class CommandProvider:
    def __init__(self, command: str) -> None:
        self.command = command
        self.name = f"command:{command}"

    async def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        timeout_s: float = 300.0,
    ) -> Reply:
        """Run the command once (no retries); temperature, max_tokens and stop are the command's business."""
        prompt = render_plain(messages)
        started = time.monotonic()
        # start_new_session: the command and everything it spawns share one group we can kill;
        # dies_with(us): a kill -9 of looplab, which can kill nothing itself, takes the command along.
        pipes = dict(stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                     start_new_session=True, preexec_fn=_dies_with(os.getpid()))
        argv = simple_argv(self.command)  # run without a shell when it needs none: the command itself dies with us
        try:
            proc = await (asyncio.create_subprocess_exec(*argv, **pipes) if argv else
                          asyncio.create_subprocess_shell(self.command, **pipes))
        except OSError as e:  # not found or not executable (the shell would have said 127/126)
            raise ModelError(f"{self.name}: cannot run {argv[0] if argv else self.command}: {e.strerror} "
                             "(fix: check the command exists and runs)") from None
        try:
            async with asyncio.timeout(timeout_s):
                out, err = await proc.communicate(prompt.encode())
        except TimeoutError:
            await _kill_group(proc)
            raise ModelError(
                f"{self.name}: no reply within {timeout_s:g}s; killed (fix: raise the timeout or check the command)",
                retryable=True,
            ) from None
        except BaseException:  # cancelled by the loop: leave no orphans behind
            await _kill_group(proc)
            raise
        _signal_group(proc.pid)  # background children the command left running go too
        latency = time.monotonic() - started
        if proc.returncode != 0:
            tail = " ".join(err.decode(errors="replace").split())[-STDERR_TAIL_CHARS:]
            missing = proc.returncode in (126, 127)  # shell: not executable / not found; retrying cannot help
            raise ModelError(
                f"{self.name}: exited with {proc.returncode}: {tail or '(no stderr)'}"
                + (" (fix: check the command exists and runs)" if missing else ""),
                retryable=not missing,
            )
        text = out.decode(errors="replace")
        # An unknown CLI reports no usage: estimate tokens at ~4 characters each, and admit the cost is unknown.
        usage = Usage(prompt_tokens=len(prompt) // 4, completion_tokens=len(text) // 4, cost_usd=None)
        return Reply(text=text, usage=usage, model=self.name, latency_s=latency, finish_reason="stop")


_SHELL_SYNTAX = set("|&;<>()$`*?[]{}~!#\n")


def simple_argv(command: str) -> list[str] | None:
    """The command's argv when it is one plain program call (no pipes, redirections, expansions or
    variable assignments), else None: it then runs under /bin/sh, whose children outlive a kill -9 of looplab."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if not argv or "=" in argv[0] or _SHELL_SYNTAX & set(command):
        return None
    return argv


def _dies_with(parent: int):
    """A pre-exec step: SIGKILL when the spawning thread (the event loop's) ends (Linux); a parent already
    gone by then means exit at once."""
    def arm() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            return  # not Linux: the group kill on timeout and cancellation still applies
        if os.getppid() != parent:
            os._exit(1)
    return arm


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    _signal_group(proc.pid)
    await proc.wait()


def _signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # group already gone
        pass
