"""How a run shows itself: one plain line per event (readable in CI logs and pipes)."""

from __future__ import annotations

import sys
from typing import TextIO

from looplab.store import AttemptRow


class LineProgress:
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

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def make_progress() -> LineProgress:
    return LineProgress()
