"""One evaluation on a worker node: unpack the experiment, run the local Evaluator (sandbox included).

Ray-free, so it runs (and is tested) the same anywhere. Timing runs hold this node's timing lock,
so measurements on one node never overlap, whichever loop or driver sent them. It is a different
file from the driver's machine-wide timing lock: a driver waiting under its own lock for a timing
task on its own node must not deadlock with it.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from looplab import __version__
from looplab.config import load_experiment
from looplab.evaluation.evaluator import Evaluator
from looplab.executors.bundle import cache_root, unpack
from looplab.records import Evaluation
from looplab.sandbox.timing_lock import timing_lock


@dataclass
class WorkerResult:
    evaluation: Evaluation
    pid: int = 0
    node: str = ""  # the Ray node id (filled in by the Ray task)
    address: str = ""  # the node's IP address
    assigned: dict[str, float] = field(default_factory=dict)  # resources Ray gave the task
    timed_from: float | None = None  # the measurement window on this node (unix seconds), timing runs only
    timed_until: float | None = None


def node_timing_lock_path() -> Path:
    return cache_root() / "timing.lock"


def evaluate_bundle(bundle: bytes, digest: str, name: str, source: str, cases: list[str], seed: int,
                    timing: bool, version: str) -> WorkerResult:
    """Evaluate source on the experiment packed in bundle; raise on machinery trouble (never the candidate's)."""
    if version != __version__:
        raise RuntimeError(f"this worker runs looplab {__version__}, the loop runs {version}: "
                           "install the same looplab on every node")
    root = unpack(bundle, digest, name)
    evaluator = Evaluator(load_experiment(root), warm_hosts=False)  # one evaluation: a warm host would not pay
    return asyncio.run(_evaluate(evaluator, source, cases, seed, timing))


async def _evaluate(evaluator: Evaluator, source: str, cases: list[str], seed: int, timing: bool) -> WorkerResult:
    if not timing:
        return WorkerResult(await evaluator.evaluate(source, cases, seed=seed), pid=os.getpid())
    await evaluator.build(source)  # compile outside the lock: only the measurement is exclusive
    path = node_timing_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    async with timing_lock(path):
        start = time.time()
        evaluation = await evaluator.evaluate(source, cases, seed=seed, timed=True)  # this node picks the core
        end = time.time()
    return WorkerResult(evaluation, pid=os.getpid(), timed_from=start, timed_until=end)
