"""How a run shows itself: a live `rich` panel on a terminal (report/panel.py), one plain line per event
otherwise (pipes and CI logs). rich is imported only for the panel.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from looplab.config import Experiment
    from looplab.report.panel import RichProgress
    from looplab.store import AttemptRow


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class LineProgress:
    """One line per event: readable in CI logs and pipes."""

    def __init__(self, stream: TextIO = sys.stdout):
        self.stream = stream

    def started(self, attempt_id: int, index: int, total: int) -> None:
        self._print(f"[{index}/{total}] attempt {attempt_id} ...")

    def finished(self, row: AttemptRow) -> None:
        outcome = row.outcome.value if row.outcome else "?"
        speed = f" x{row.speedup:.3f}" if row.speedup else ""
        note = f" — {row.strategy}" if row.strategy else ""
        self._print(f"  attempt {row.id}: {outcome}{speed}: {row.reason[:160]}{note[:120]}")

    def note(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        self.stream.flush()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def make_progress(stream: TextIO | None = None, *, experiment: Experiment | None = None,
                  budget_usd: float | None = None, store: str | None = None) -> LineProgress | RichProgress:
    """A live panel when stream (default stdout) is a terminal, plain lines otherwise."""
    stream = stream if stream is not None else sys.stdout
    if not _maybe_terminal(stream):
        return LineProgress(stream)
    from rich.console import Console

    from looplab.report.panel import RichProgress

    console = Console(file=stream)
    if console.is_terminal and not console.is_dumb_terminal:
        return RichProgress(console, experiment=experiment, budget_usd=budget_usd, store=store)
    return LineProgress(stream)


def _maybe_terminal(stream: TextIO) -> bool:
    """False when rich would surely say "not a terminal" (no tty, nothing forcing one): no rich to import."""
    if os.environ.get("TTY_COMPATIBLE") or os.environ.get("FORCE_COLOR") is not None:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
