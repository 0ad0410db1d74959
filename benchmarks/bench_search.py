"""Search-loop figures (printed, not asserted):

1. throughput: candidates per minute with --workers 1, 4, 8 against a model server on 127.0.0.1
   that answers after 2 s, on a fast evaluator;
2. overhead: looplab's own time per attempt (wall minus model and evaluation) as the store grows;
3. novelty: evaluations spent to reach the best candidate of a shuffled replay pool, with and
   without duplicate filtering.

    python benchmarks/bench_search.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from wire_servers import OpenAIServer  # noqa: E402

from looplab.config import load_experiment  # noqa: E402
from looplab.evaluation import evaluator as evaluate_module  # noqa: E402
from looplab.loop import RunOptions, run_search  # noqa: E402
from looplab.models import provider_from_spec  # noqa: E402
from looplab.records import CaseResult, Evaluation, Outcome, Usage  # noqa: E402
from looplab.store import Store  # noqa: E402

HARNESS = '''
import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location("cand", sys.argv[1]); m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
for case in sys.argv[2:]:
    ok = all(m.f(x) == x + 1 for x in range(50))
    if not ok:
        print(json.dumps({"case": case, "ok": False, "error": "f(x) != x + 1"})); continue
    samples = []
    for _ in range(5):
        t = time.perf_counter(); [m.f(x) for x in range(2000)]; samples.append((time.perf_counter() - t) * 1e6)
    print(json.dumps({"case": case, "ok": True, "samples_us": samples}))
'''
TOML = '''
[target]
language = "python"
function = "f"
baseline = "baseline.py"
[evaluate]
command = "python3 {experiment}/harness/bench.py {candidate} {cases}"
timeout_s = 30
[cases]
search = ["a"]
[objective]
rounds = 3
max_rounds = 6
[search]
near_duplicate = %s
novelty = %s
'''


FINISHED: list[tuple[float, float]] = []  # (clock, evaluation seconds so far) at each finished attempt


class Quiet:
    def started(self, *a): ...
    def finished(self, row): FINISHED.append((time.perf_counter(), EVAL_SECONDS[0]))
    def note(self, text): ...


def make_experiment(parent: Path, near: float = 0.95, novelty: bool = True) -> Path:
    exp = parent / f"exp{time.monotonic_ns()}"
    (exp / "harness").mkdir(parents=True)
    (exp / "harness" / "bench.py").write_text(HARNESS)
    (exp / "baseline.py").write_text(SLOW.format(k=1))
    (exp / "EXPERIMENT.md").write_text("Make f faster.\n")
    (exp / "experiment.toml").write_text(TOML % (near, str(novelty).lower()))
    return exp


SLOW = "def f(x):\n    y = x + {k}\n    for _ in range(30):\n        y += 0\n    return y - {k} + 1\n"
FAST = "Strategy: no loop\n\n```python\ndef f(x):\n    return x + 1\n```\n"


def variant(k: int) -> str:
    """A distinct, valid candidate about as slow as the baseline."""
    return f"Strategy: variant {k}\n\n```python\n{SLOW.format(k=k)}```\n"


def run(exp: Path, spec: str, loop: int, workers: int = 1, base_url: str | None = None) -> float:
    experiment = load_experiment(exp)
    provider = provider_from_spec(spec, base_url=base_url, env={"OPENAI_API_KEY": "x"})
    t = time.perf_counter()
    asyncio.run(run_search(experiment, provider, RunOptions(loop=loop, workers=workers, seed=1), Quiet()))
    return time.perf_counter() - t


def throughput(tmp: Path, n: int) -> None:
    print(f"\n1. throughput: {n} attempts, model answers after 2.0 s, fast Python evaluator")
    for workers in (1, 4, 8):
        exp = make_experiment(tmp)
        with OpenAIServer([variant(k) for k in range(2, n + 2)], delay_s=2.0) as server:
            wall = run(exp, "openai:bench", n, workers, base_url=server.url)
        print(f"   --workers {workers}: {wall:6.1f} s  -> {60 * n / wall:5.1f} candidates/min")


def _replay(tmp: Path, replies: list[str]) -> Path:
    path = tmp / f"r{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps({"content": r}) + "\n" for r in replies))
    return path


def _fill(store: Store, count: int) -> None:
    """Grow the store with realistic finished attempts (sources, samples, failures)."""
    rng = random.Random(0)
    for i in range(count):
        aid = store.begin_attempt(model="bench")
        store.record_call(attempt_id=aid, model="bench", kind="propose", usage=Usage(900, 300, 0, 0.0), latency_s=1.0,
                          response="x" * 2000)
        outcome = rng.choice([Outcome.SLOWER, Outcome.COMPILE_ERROR, Outcome.INVALID, Outcome.DUPLICATE])
        ev = Evaluation(ok=outcome == Outcome.SLOWER,
                        cases={"a": CaseResult("a", True, [rng.uniform(90, 110) for _ in range(10)])})
        store.finish_attempt(aid, outcome=outcome, reason=f"error: thing {i} at line {i % 97}",
                             source=f"def f(x):\n    return x + 1  # {i}\n" + "#" * 3000, source_hash=f"h{i}",
                             strategy=f"idea {i % 13}", evaluation=ev)


EVAL_SECONDS = [0.0]


def _timed_evaluate():
    """Count the wall time spent inside Evaluator.evaluate (builds and sandboxed runs)."""
    original = evaluate_module.Evaluator.evaluate

    async def evaluate(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return await original(self, *args, **kwargs)
        finally:
            EVAL_SECONDS[0] += time.perf_counter() - t

    evaluate_module.Evaluator.evaluate = evaluate


def overhead(tmp: Path, sizes: list[int], per_size: int) -> None:
    print(f"\n2. looplab's own time per attempt (instant model, trivial evaluator), {per_size} attempts per point")
    for size in sizes:
        exp = make_experiment(tmp)
        experiment = load_experiment(exp)
        store = Store(experiment.store_path)
        _fill(store, size)
        store.close()
        replies = [variant(k) for k in range(10_000, 10_000 + per_size)]
        EVAL_SECONDS[0] = 0.0
        FINISHED.clear()
        t0 = time.perf_counter()
        wall = run(exp, f"replay:{_replay(tmp, replies)}", per_size)
        (t1, e1), (tn, en) = FINISHED[0], FINISHED[-1]
        steady = ((tn - t1) - (en - e1)) / (len(FINISHED) - 1)  # between the first and last attempt's end
        startup = (t1 - t0) - e1 - steady  # once per run: mark_interrupted, novelty index, first SCORES
        print(f"   store of {size:5d} attempts: {1000 * wall / per_size:7.1f} ms/attempt wall; looplab's own "
              f"{1000 * steady:6.1f} ms per attempt + {1000 * startup:6.0f} ms once at start")


def novelty(tmp: Path, repeats: int) -> None:
    print("\n3. evaluations spent before the one real improvement is found (shuffled pool of 31 replies)")
    pool = [variant(k) for k in range(2, 8)]  # distinct valid candidates, no faster
    pool += [variant(2).replace("y", "z") for _ in range(6)]  # renamed copies (near-duplicates)
    pool += [variant(3) for _ in range(6)]  # exact repeats
    pool += ["Strategy: oops\n\n```python\ndef f(x):\n    return x +\n```\n"] * 6  # syntax errors
    pool += ["Strategy: wrong\n\n```python\ndef f(x):\n    return x\n```\n"] * 6  # wrong results
    for label, near, on in (("with novelty filtering", 0.95, True), ("without", 1.0, False)):
        spent = []
        for rep in range(repeats):
            rng = random.Random(rep)
            replies = pool[:]
            rng.shuffle(replies)
            replies.insert(rng.randrange(len(replies) // 2, len(replies)), FAST)
            exp = make_experiment(tmp, near, on)
            run(exp, f"replay:{_replay(tmp, replies)}", len(replies))
            store = Store(load_experiment(exp).store_path)
            rows = [r for r in store.attempts() if r.id > 0]
            best = next((r.id for r in rows if r.outcome == Outcome.ACCEPTED), None)
            if best is None:
                print("   (the improvement was not accepted in this repeat:",
                      [(r.id, r.outcome.value, r.reason[:60]) for r in rows if "no loop" in r.strategy], ")")
                continue
            spent.append(sum(1 for r in rows if r.id <= best and r.cases))
            store.close()
        print(f"   {label:24s}: {statistics.mean(spent):5.1f} evaluations (build + validate + time) to reach the best")


def main() -> None:
    _timed_evaluate()
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        throughput(tmp, 8 if args.quick else 16)
        overhead(tmp, [0, 250] if args.quick else [0, 250, 1000, 2000], 5 if args.quick else 10)
        novelty(tmp, 1 if args.quick else 3)
    print(textwrap.dedent("""
        Notes: timing runs serialise under the machine-wide lock, so throughput stops scaling once
        evaluation time dominates; overhead includes regenerating SCORES/MEMORY after each attempt."""))


if __name__ == "__main__":
    main()
