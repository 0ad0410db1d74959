"""Every way a run stops: by itself (StopReason), on an error that ends it (RunStopped), or on a signal.

SIGINT, SIGTERM and SIGHUP (Ctrl-C, systemd, `docker stop`, a CI cancel, a closed terminal) all stop
a run the same way: the attempts in flight are cancelled and recorded `interrupted`, the loop's
heartbeat row is removed, one line is printed and the exit code is 128 + the signal. A second
signal while that happens only says so; a third quits at once (the next start records the rest).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Coroutine, Iterable
from enum import StrEnum
from typing import Any, TypeVar

from looplab.errors import UserError

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopReason(StrEnum):
    """Why a run ended by itself (the CLI's exit code follows from it)."""

    LOOP_DONE = "loop_done"
    BUDGET = "budget"
    NO_REPLIES = "no_replies"
    ERRORS = "errors"  # attempts kept failing outside the candidate
    BUDGET_UNKNOWN = "budget_unknown"  # --budget-usd with a model whose price is unknown


class RunStopped(UserError):
    """The run cannot go on (say, the model refuses the key): the attempt is recorded; one line, exit 2."""


class Signalled(Exception):
    """The run was stopped by a signal, after recording what was in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


async def all_or_none(coros: Iterable[Coroutine]) -> None:
    """Run coroutines together; when one fails or all are cancelled, the others are cancelled too (so
    they record their attempts as interrupted) and awaited before the error goes on."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError as e:
        for t in tasks:
            t.cancel(msg=e.args[0] if e.args else None)
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    failed = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
    if failed:
        for t in tasks:
            t.cancel(msg=f"the run stopped: {failed[0]}")
        await asyncio.gather(*tasks, return_exceptions=True)
        raise failed[0]


async def until_signal(coro: Coroutine[Any, Any, T]) -> T:
    """Await coro; SIGINT/SIGTERM/SIGHUP cancel it (its handlers record what was in flight), then
    raise Signalled. Must run in the main thread's event loop."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            task.cancel(msg=f"stopped by {signal.Signals(signum).name}")
        elif len(received) == 2:
            print("looplab: stopping: recording the attempts in flight (signal once more to quit at once)",
                  file=sys.stderr, flush=True)
        else:
            os._exit(128 + received[0])  # the store's transactions and looplab's files are safe to cut here

    for signum in SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise Signalled(received[0]) from None
        raise
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
            if received:  # stopping already: a late second Ctrl-C must not kill the exit halfway
                signal.signal(signum, signal.SIG_IGN)
