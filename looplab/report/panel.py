"""The live panel a run shows on a terminal (rich): attempt n/N, the attempts in flight, the latest
outcomes with their one-line reasons, the incumbent and its speedup, tokens and cost so far, and an
ETA (from the attempt count, and from --budget-usd when one is set)."""

from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from looplab.records import Outcome, Usage, times_better
from looplab.report.progress import duration
from looplab.store import AttemptRow

if TYPE_CHECKING:
    from looplab.config import Experiment

RECENT = 8  # outcomes kept on screen
STYLES = {
    "accepted": "bold green", "specialist": "cyan", "slower": "grey50", "invalid": "dark_orange",
    "overfit": "magenta", "compile_error": "red", "timeout": "yellow4", "crash": "red",
    "screen_rejected": "yellow", "extract_error": "blue", "duplicate": "grey50", "model_error": "bright_red",
    "infra_error": "red", "interrupted": "yellow",
}


class RichProgress:
    """A live panel redrawn a few times a second; notes print above it.

    With an experiment, the incumbent's speedup over the baseline and the usage so far are read
    from its store (read-only), so a resumed run shows the whole search, not just this run.
    """

    def __init__(self, console: Console, *, experiment: Experiment | None = None,
                 budget_usd: float | None = None, auto_refresh: bool = True,
                 clock: Callable[[], float] = time.monotonic, store: str | None = None) -> None:
        self.console = console
        self.experiment = experiment
        self.store_url = store  # --store, as the run uses it
        self.budget_usd = budget_usd
        self.clock = clock
        self._lock = threading.RLock()  # rich redraws from its own thread
        self._live = Live(self, console=console, auto_refresh=auto_refresh, refresh_per_second=4,
                          transient=False, redirect_stdout=True, redirect_stderr=True)
        self._running = False
        self._closed = False
        self._t0: float | None = None
        self._index = self._total = self._done = 0
        self._in_flight: dict[int, float] = {}
        self._slot_of: dict[int, int] = {}  # attempt id → its slot (index); a duplicate is asked again
        self._slots_done: set[int] = set()
        self._recent: deque[AttemptRow] = deque(maxlen=RECENT)
        self._run_usage = Usage()  # this run's attempts
        self._usage: Usage | None = None  # the whole search's, when known (from the store)
        self._incumbent: tuple[int, float | None, str] | None = None  # id, speedup vs baseline, label

    # --- the Progress protocol ---
    def started(self, attempt_id: int, index: int, total: int) -> None:
        with self._lock:
            now = self.clock()
            self._t0 = now if self._t0 is None else self._t0
            self._index, self._total = index, total
            self._in_flight[attempt_id] = now
            self._slot_of[attempt_id] = index
        self._start()

    def finished(self, row: AttemptRow) -> None:
        with self._lock:
            self._in_flight.pop(row.id, None)
            self._done += 1
            if row.outcome is not Outcome.DUPLICATE:  # the loop asks again in the same slot after one
                self._slots_done.add(self._slot_of.get(row.id, row.id))
            self._recent.appendleft(row)
            self._run_usage = self._run_usage + row.usage
            if row.outcome is Outcome.ACCEPTED:
                self._incumbent = (row.id, None, row.strategy)
            self._read_store()
        self._refresh()

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        """Leave the last frame on screen and give the terminal back (also runs at exit)."""
        if self._running:
            with self._lock:
                self._in_flight.clear()  # what is left was discarded or interrupted: nothing runs now
                self._closed = True  # the run is over: no ETA in the last frame
            self._running = False
            self._live.stop()

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- drawing ---
    def __rich__(self) -> RenderableType:
        with self._lock:
            return Panel(Group(self._head(), self._flight(), self._table(), self._foot()),
                         title=f"looplab · {self.experiment.name}" if self.experiment else "looplab",
                         title_align="left", border_style="grey50")

    def _head(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True)
        elapsed = self.clock() - self._t0 if self._t0 is not None else 0.0
        eta = self.eta()
        right = f"{self._done} done · {duration(elapsed)}" + (f" · ETA {eta}" if eta else "")
        grid.add_row(Text(f"attempt {self._index}/{self._total}", style="bold"),
                     ProgressBar(total=max(self._total, 1), completed=len(self._slots_done)), right)
        return grid

    def _flight(self) -> RenderableType:
        if not self._in_flight:
            return Text("in flight: none", style="grey50")
        now = self.clock()
        return Text("in flight: " + ", ".join(f"#{i} ({duration(now - t)})" for i, t in self._in_flight.items()))

    def _table(self) -> RenderableType:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(no_wrap=True, min_width=14)
        table.add_column(justify="right", no_wrap=True, min_width=6)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for row in self._recent:
            outcome = row.outcome.value if row.outcome else "?"
            speed = f"x{row.speedup:.2f}" if row.speedup else ""
            why = " ".join(row.reason.split())
            line = f"{row.strategy} — {why}" if row.strategy and row.outcome in (
                Outcome.ACCEPTED, Outcome.SPECIALIST, Outcome.SLOWER) else why
            table.add_row(f"#{row.id}", Text(outcome, style=STYLES.get(outcome, "")), speed, line)
        return table if self._recent else Text("no finished attempts yet", style="grey50")

    def _foot(self) -> RenderableType:
        if self._incumbent is None:
            best = Text("incumbent: the baseline")
        else:
            attempt_id, speedup, label = self._incumbent
            best = Text.assemble("incumbent ", (f"#{attempt_id}", "bold green"),
                                 f" x{speedup:.2f} vs baseline" if speedup else "", f" · {label}" if label else "")
        usage = self._usage or self._run_usage
        cost = "unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
        if self.budget_usd is not None:
            cost += f" of ${self.budget_usd:.2f}"
        spend = Text(f"tokens {usage.total_tokens:,} ({usage.cached_tokens:,} cached) · cost {cost}")
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        grid.add_row(best, spend)
        return grid

    def eta(self) -> str:
        """Time left: the slots still to run at this run's pace, or fewer when the budget ends first."""
        slots = len(self._slots_done)
        if not slots or self._t0 is None or self._closed:
            return ""
        elapsed = self.clock() - self._t0
        per_attempt = elapsed / slots
        left = max(self._total - slots, 0)
        by_budget = ""
        run_cost = self._run_usage.cost_usd
        usage = self._usage or self._run_usage
        if self.budget_usd is not None and run_cost and usage.cost_usd is not None:
            affordable = max(self.budget_usd - usage.cost_usd, 0.0) / (run_cost / slots)
            if affordable < left:
                left, by_budget = int(affordable + 0.999), " (budget)"
        return duration(per_attempt * left) + by_budget

    # --- internals ---
    def _read_store(self) -> None:
        """Incumbent gain and total usage from the store, when the experiment is known."""
        if self.experiment is None:
            return
        from looplab.store.readonly import open_readonly

        store = open_readonly(self.experiment, self.store_url)
        if store is None:
            return
        try:
            incumbent, baseline = store.incumbent(), store.baseline()
            self._usage = store.usage_total()
        finally:
            store.close()
        if incumbent is None or incumbent.outcome is not Outcome.ACCEPTED:
            self._incumbent = None
            return
        direction = self.experiment.config.objective.direction
        gain = times_better(baseline.metric, incumbent.metric, direction) if baseline is not None else None
        self._incumbent = (incumbent.id, gain, incumbent.strategy)

    def _start(self) -> None:
        if not self._running:
            self._running = True
            self._live.start()
            atexit.register(self.close)  # an early exit must still give the cursor back
        self._refresh()

    def _refresh(self) -> None:
        if self._running:
            self._live.refresh()
