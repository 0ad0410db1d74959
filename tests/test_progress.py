"""Terminal progress: a rich panel on a real pseudo-terminal, plain lines in a pipe, content checked."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import textwrap
from pathlib import Path

from rich.console import Console

from looplab.config import load_experiment
from looplab.records import Outcome, Usage
from looplab.report.panel import RichProgress
from looplab.report.progress import LineProgress, duration, make_progress
from looplab.store import AttemptRow, Store

sys.path.insert(0, str(Path(__file__).parent))
from test_html_report import record_search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def row(attempt_id: int, outcome: Outcome, reason: str, *, speedup: float | None = None, strategy: str = "",
        cost: float | None = 0.0, tokens: int = 1000) -> AttemptRow:
    return AttemptRow(id=attempt_id, started_at=0.0, ended_at=1.0, model="replay", outcome=outcome, reason=reason,
                      strategy=strategy, speedup=speedup, usage=Usage(tokens, 100, 50, cost))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot(progress: RichProgress, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(progress)
    return console.file.getvalue()


def rich(clock: Clock, **kw) -> RichProgress:
    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    return RichProgress(console, auto_refresh=False, clock=clock, **kw)


def test_panel_shows_count_in_flight_outcomes_incumbent_usage_and_eta() -> None:
    clock = Clock()
    p = rich(clock)
    p.started(1, 1, 4)
    clock.now += 10
    p.finished(row(1, Outcome.COMPILE_ERROR, "candidate.c:3:27: error: expected ';'\nbefore 'for'"))
    p.started(2, 2, 4)
    p.started(3, 3, 4)
    clock.now += 5
    p.finished(row(2, Outcome.ACCEPTED, "x2.10 [1.90, 2.30] over #0", speedup=2.1, strategy="ikj loop order"))
    clock.now += 3
    text = snapshot(p)
    assert "attempt 3/4" in text and "2 done · 18s · ETA 18s" in text
    assert "in flight: #3 (8s)" in text
    assert "compile_error" in text and "error: expected ';' before 'for'" in text  # one line per reason
    assert "#2 accepted" in " ".join(text.split()) and "ikj loop order — x2.10 [1.90, 2.30] over #0" in text
    assert text.index("#2") < text.index("#1")  # newest first
    assert "incumbent #2" in text and "tokens 2,200 (100 cached) · cost $0.0000" in text


def test_a_duplicate_is_asked_again_in_its_slot_and_the_panel_ends_with_nothing_in_flight() -> None:
    clock = Clock()
    p = rich(clock)
    p.started(1, 1, 3)
    clock.now += 4
    p.finished(row(1, Outcome.DUPLICATE, "same program as attempt 0"))
    assert p.eta() == ""  # the slot is not done: the loop asks again
    p.started(2, 1, 3)
    clock.now += 6
    p.finished(row(2, Outcome.SLOWER, "x0.98: within noise"))
    assert p.eta() == "20s"  # one slot of three in 10 s
    p.started(3, 2, 3)
    p.close()  # e.g. the replay file ran out: attempt 3 was discarded
    text = snapshot(p)
    assert "in flight: none" in text and "2 done" in text and "attempt 2/3" in text and "ETA" not in text


def test_eta_stops_at_the_budget_and_unknown_prices_say_so() -> None:
    clock = Clock()
    p = rich(clock, budget_usd=1.0)
    p.started(1, 1, 10)
    clock.now += 10
    p.finished(row(1, Outcome.SLOWER, "x0.97: not faster", speedup=0.97, cost=0.5))
    assert p.eta() == "10s (budget)"  # one more attempt is affordable, not nine
    assert "cost $0.5000 of $1.00" in snapshot(p)
    p.finished(row(2, Outcome.MODEL_ERROR, "timeout", cost=None))
    assert "cost unknown of $1.00" in snapshot(p)
    assert duration(59.4) == "59s" and duration(61) == "1m 01s" and duration(3720) == "1h 02m"


def test_with_the_experiment_the_panel_reads_the_whole_search_from_the_store(tmp_path: Path) -> None:
    root = record_search(tmp_path)  # baseline, 7 attempts, #4 accepted at x2.11 over the baseline
    exp = load_experiment(root)
    with Store(exp.store_path) as store:
        last = store.attempt(7)
    p = rich(Clock(), experiment=exp)
    p.started(7, 1, 1)
    p.finished(last)
    text = snapshot(p)
    assert "looplab · matmul" in text
    assert "incumbent #4 x2.11 vs baseline · ikj loop order" in text
    assert "tokens 7,630 (1,600 cached)" in text  # all seven attempts, not just this run's one


def test_make_progress_plain_lines_for_pipes_and_files() -> None:
    out = io.StringIO()
    p = make_progress(out)
    assert isinstance(p, LineProgress)
    p.started(3, 1, 2)
    p.finished(row(3, Outcome.INVALID, "n128: max abs diff 3.1e-2", strategy="halve it"))
    p.note("stopped: ran 2 attempts")
    assert out.getvalue().splitlines() == ["[1/2] attempt 3 ...", "  attempt 3: invalid: n128: max abs diff 3.1e-2 — halve it",
                                           "stopped: ran 2 attempts"]


SCRIPT = textwrap.dedent("""
    from looplab.report.progress import make_progress
    from looplab.records import Outcome, Usage
    from looplab.store import AttemptRow
    p = make_progress()
    p.note("looplab: matmul with replay")
    p.started(1, 1, 2)
    p.finished(AttemptRow(id=1, started_at=0, ended_at=1, model="m", outcome=Outcome.ACCEPTED,
                          reason="x1.50 [1.40, 1.60] over #0", speedup=1.5, usage=Usage(10, 5, 0, 0.0)))
    p.started(2, 2, 2)
    p.finished(AttemptRow(id=2, started_at=0, ended_at=1, model="m", outcome=Outcome.TIMEOUT,
                          reason="killed after 60 s", usage=Usage(10, 5, 0, 0.0)))
    print("after the run")
""")


def _run(tty: bool) -> str:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    if not tty:
        return subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                              timeout=60, check=True).stdout
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:  # read until the child closes the terminal, so its output cannot block on a full pty
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def test_a_real_terminal_gets_the_live_panel_and_a_pipe_gets_plain_lines() -> None:
    screen = _run(tty=True)
    assert "\x1b[" in screen  # drawn with terminal control codes
    plain = ANSI.sub("", screen)
    assert "looplab: matmul with replay" in plain and "attempt 2/2" in plain
    assert "x1.50" in plain and "timeout" in plain and "killed after 60 s" in plain
    assert "incumbent #1" in plain and "after the run" in plain
    assert "\x1b[?25h" in screen  # the cursor is given back at exit

    lines = _run(tty=False)
    assert "\x1b" not in lines
    assert lines.splitlines() == ["looplab: matmul with replay", "[1/2] attempt 1 ...",
                                  "  attempt 1: accepted x1.500: x1.50 [1.40, 1.60] over #0",
                                  "[2/2] attempt 2 ...", "  attempt 2: timeout: killed after 60 s", "after the run"]
