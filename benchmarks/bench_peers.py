"""looplab next to OpenEvolve on one deterministic-score task and one fake model server (printed, not asserted).

The task is benchmarks/peer_task (an OpenEvolve-shaped function-minimisation folder: initial_program.py,
evaluator.py, config.yaml); the model is tests/wire_servers.py's OpenAI-compatible server on 127.0.0.1,
answering each request with a new, distinct program after a fixed latency. Both tools run as their
command lines, interleaved (looplab, OpenEvolve, looplab, ...), in one session; OpenEvolve only when it is
installed (`pip install openevolve`, never a looplab dependency). looplab runs with its sandbox on.

    python benchmarks/bench_peers.py [--quick] [--attempts N] [--no-openevolve]

Figures:
1. harness overhead per attempt = cycle − model latency − evaluator time, where the cycle is the time
   between two model requests of one worker and the evaluator time is what evaluate() measured itself
   (its eval_seconds metric, once per evaluator run);
2. candidates per minute at 500 ms model latency with 1, 4 and 8 workers (steady state: from the moment
   every worker has asked twice to the last request);
3. looplab's overhead with 50 and with 5,000 attempts already in the store;
4. launch → first model request (a fresh experiment, which evaluates the baseline first; a resumed one).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "benchmarks" / "peer_task"
sys.path.insert(0, str(ROOT / "tests"))

from wire_servers import OpenAIServer  # noqa: E402

BIN = Path(sys.executable).parent
BLOCK = '''def search_algorithm(rng, iterations=300, bounds=(-5.0, 5.0)):
    """Random restarts mixed with local steps that shrink."""
    step = {step}
    best_x, best_y = rng.uniform(*bounds), rng.uniform(*bounds)
    best_value = evaluate_function(best_x, best_y)
    for i in range({n}):
        if i % {m} == 0:
            x, y = rng.uniform(*bounds), rng.uniform(*bounds)
        else:
            x, y = best_x + rng.normal(0, step), best_y + rng.normal(0, step)
        value = evaluate_function(x, y)
        if value < best_value:
            best_value, best_x, best_y = value, x, y
        step = max(step * {decay}, 0.01)
    return best_x, best_y, best_value
'''


def program(k: int) -> str:
    """The k-th distinct program: the same shape, other constants (never a near-duplicate of another)."""
    block = BLOCK.format(step=round(0.3 + (k % 17) * 0.05, 3), n=200 + k % 150, m=3 + k % 11,
                         decay=round(0.99 - (k % 7) * 0.002, 4))
    text = (TASK / "initial_program.py").read_text()
    return re.sub(r"(# EVOLVE-BLOCK-START\n)[\s\S]*?(# EVOLVE-BLOCK-END)", lambda m: m[1] + block + m[2], text)


def server(latency_s: float) -> OpenAIServer:
    counter = itertools.count(1)
    return OpenAIServer(lambda body: f"Restarts and shrinking local steps.\n\n```python\n{program(next(counter))}```\n",
                        delay_s=latency_s)


def task(tmp: Path, name: str) -> Path:
    dest = tmp / name
    shutil.copytree(TASK, dest)
    os.chmod(tmp, 0o755)
    return dest


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


# --- one run of each tool -------------------------------------------------------------------------

def cpu_s() -> float:
    """CPU seconds of every finished child process of this one (and their children)."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_looplab(folder: Path, url: str, n: int, workers: int = 1) -> dict:
    argv = [str(BIN / "looplab"), "run", str(folder), "--model", "openai:bench", "--base-url", url,
            "--loop", str(n), "--workers", str(workers), "--seed", "1"]
    before = last_attempt(folder)  # only this run's attempts count (a filled or resumed store has others)
    start, cpu = time.monotonic(), cpu_s()
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": "bench"})
    if p.returncode != 0:
        raise SystemExit(f"looplab failed ({p.returncode}): {p.stderr[-800:]}")
    db = sqlite3.connect(folder / ".looplab" / "looplab.db")
    rows = db.execute("SELECT outcome, cases FROM attempts WHERE id > ?", (max(before, 0),)).fetchall()
    db.close()
    runs, seconds = 0, 0.0
    for outcome, cases in rows:
        metrics = json.loads(cases or "{}").get("score", {}).get("metrics", {})
        if "eval_seconds" in metrics:
            times = 2 if outcome in ("accepted", "specialist") else 1  # a win is evaluated once more
            runs += times
            seconds += times * metrics["eval_seconds"]
    return {"start": start, "end": time.monotonic(), "eval_s": seconds, "runs": runs, "attempts": len(rows),
            "cpu_s": cpu_s() - cpu}


def last_attempt(folder: Path) -> int:
    db = folder / ".looplab" / "looplab.db"
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()[0]


def run_openevolve(folder: Path, url: str, n: int, workers: int = 1) -> dict:
    import yaml

    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["llm"]["api_base"] = url
    config["max_iterations"] = config["checkpoint_interval"] = n  # one checkpoint, after the last iteration
    config["evaluator"]["parallel_evaluations"] = workers
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    out = folder / "openevolve_output"
    argv = [str(BIN / "openevolve-run"), str(folder / "initial_program.py"), str(folder / "evaluator.py"),
            "--config", str(folder / "config.yaml"), "--iterations", str(n), "--output", str(out)]
    start, cpu = time.monotonic(), cpu_s()
    p = subprocess.run(argv, capture_output=True, text=True, cwd=folder, env={**os.environ, "OPENAI_API_KEY": "bench"})
    if p.returncode != 0:
        raise SystemExit(f"openevolve failed ({p.returncode}): {p.stderr[-800:]}")
    programs = [json.loads(f.read_text()) for f in out.glob("checkpoints/checkpoint_*/programs/*.json")]
    seconds = [pr["metrics"].get("eval_seconds", 0.0) for pr in programs if pr.get("iteration_found", 0) > 0]
    return {"start": start, "end": time.monotonic(), "eval_s": sum(seconds), "runs": len(seconds),
            "attempts": len(seconds), "cpu_s": cpu_s() - cpu}


def openevolve_installed() -> bool:
    return (BIN / "openevolve-run").exists()


# --- figures ----------------------------------------------------------------------------------------

def overhead_ms(srv: OpenAIServer, res: dict, latency_s: float, skip: int = 0) -> float:
    """Per attempt: the mean cycle between requests (after `skip` cycles) minus latency and evaluator time."""
    at = sorted(r.at for r in srv.requests)[skip:]
    cycle = (at[-1] - at[0]) / (len(at) - 1)
    return 1000 * (cycle - latency_s - res["eval_s"] / max(res["attempts"], 1))


def figure_overhead(tmp: Path, n: int, repeats: int, peers: bool) -> None:
    print(f"\n1. harness overhead per attempt (cycle − model latency − evaluator time), {n} attempts, 1 worker, "
          f"instant model; {load()}")
    tools = [("looplab", run_looplab)] + ([("OpenEvolve", run_openevolve)] if peers else [])
    found: dict[str, list[float]] = {name: [] for name, _ in tools}
    for rep in range(repeats):
        for name, run in tools:
            with server(0.0) as srv:
                res = run(task(tmp, f"o-{name}-{rep}"), srv.url, n)
            found[name].append(overhead_ms(srv, res, 0.0, skip=1))
            print(f"   {name:10s} run {rep + 1}: {found[name][-1]:7.1f} ms per attempt; evaluator "
                  f"{1000 * res['eval_s'] / max(res['runs'], 1):5.1f} ms per run, "
                  f"{res['runs'] / max(res['attempts'], 1):.2f} runs per candidate; whole run's CPU "
                  f"{1000 * res['cpu_s'] / max(res['attempts'], 1):5.1f} ms per attempt (start-up included)")
    mine = statistics.median(found["looplab"])
    line = f"   median: looplab {mine:.1f} ms"
    if peers:
        theirs = statistics.median(found["OpenEvolve"])
        line += f", OpenEvolve {theirs:.1f} ms -> {mine / theirs:.2f}x OpenEvolve's (target <= 0.5x)"
    print(line + f"; {load()}")


def figure_throughput(tmp: Path, per_worker: int, peers: bool) -> None:
    print(f"\n2. candidates per minute at 500 ms model latency (steady state: from every worker's second request "
          f"to the last); {load()}")
    tools = [("looplab", run_looplab)] + ([("OpenEvolve", run_openevolve)] if peers else [])
    rates: dict[str, dict[int, float]] = {name: {} for name, _ in tools}
    for workers in (1, 4, 8):
        n = per_worker * workers + 2 * workers
        for name, run in tools:
            with server(0.5) as srv:
                run(task(tmp, f"t-{name}-{workers}"), srv.url, n, workers)
            at = sorted(r.at for r in srv.requests)
            first = 2 * workers - 1  # each worker has asked twice: hosts and processes started, one attempt done
            rates[name][workers] = 60 * (len(at) - 1 - first) / (at[-1] - at[first])
            print(f"   {name:10s} --workers {workers}: {rates[name][workers]:6.1f} candidates/min "
                  f"({rates[name][workers] / rates[name][1]:.2f}x one worker)")
    mine = rates["looplab"]
    print(f"   looplab: 4 workers {mine[4] / mine[1]:.2f}x one (target >= 3.5x), 8 workers {mine[8] / mine[1]:.2f}x "
          f"(target >= 6x); {load()}")


def fill(folder: Path, count: int) -> None:
    """count finished attempts in the store, as a long search leaves them (valid programs, failures, calls)."""
    from looplab.config import load_experiment
    from looplab.records import CaseResult, Evaluation, Outcome, Usage
    from looplab.store import Store

    rng = random.Random(0)
    store = Store(load_experiment(folder).store_path)
    for i in range(count):
        aid = store.begin_attempt(model="bench")
        store.record_call(attempt_id=aid, model="bench", kind="propose", usage=Usage(900, 300, 0, None),
                          latency_s=0.5, response="x" * 2000)
        outcome = rng.choice([Outcome.SLOWER] * 3 + [Outcome.INVALID, Outcome.DUPLICATE])
        ev = Evaluation(ok=outcome == Outcome.SLOWER,
                        cases={"score": CaseResult("score", True, [rng.uniform(0.5, 0.69)],
                                                   metrics={"eval_seconds": 0.01})})
        store.finish_attempt(aid, outcome=outcome, reason=f"score {i} lower", source=program(100_000 + i),
                             source_hash=f"fill{i}", strategy=f"idea {i % 13}", evaluation=ev)
    store.close()


def figure_store(tmp: Path, n: int, sizes: list[int], repeats: int) -> None:
    print(f"\n3. looplab's overhead per attempt as the store grows ({n} attempts per run, runs interleaved); {load()}")
    folders = {}
    for size in sizes:
        folders[size] = task(tmp, f"s-{size}")
        with server(0.0) as srv:  # the baseline first (then the fill; a run needs at least 1 attempt)
            run_looplab(folders[size], srv.url, 1)
        t = time.monotonic()
        fill(folders[size], size)
        print(f"   filled {size} attempts in {time.monotonic() - t:.0f} s")
    found: dict[int, list[float]] = {size: [] for size in sizes}
    for rep in range(repeats):
        for size in sizes:
            run = tmp / f"s-{size}-{rep}"  # a fresh copy each time: a second run in one folder would repeat the first
            shutil.copytree(folders[size], run)
            with server(0.0) as srv:
                res = run_looplab(run, srv.url, n)
            at = sorted(r.at for r in srv.requests)
            found[size].append(overhead_ms(srv, res, 0.0, skip=1))
            first = 1000 * (at[1] - at[0]) - found[size][-1]
            print(f"   {size:5d} stored: {found[size][-1]:6.1f} ms per attempt (and once, in the first attempt: "
                  f"+{first:.0f} ms, the novelty index)")
    small, big = (statistics.median(found[s]) for s in (sizes[0], sizes[-1]))
    print(f"   medians: {small:.1f} ms at {sizes[0]}, {big:.1f} ms at {sizes[-1]}: {100 * (big / small - 1):+.0f}% "
          f"(target within 20%); {load()}")


def figure_launch(tmp: Path, repeats: int, peers: bool) -> None:
    print(f"\n4. launch -> first model request; {load()}")
    # A warm machine has looplab's bytecode, as OpenEvolve's (pip compiles a wheel at install); an editable
    # install under PYTHONDONTWRITEBYTECODE=1 never writes it, and would compile every module at each launch.
    compiled = subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "looplab")],
                              capture_output=True, text=True)
    print(f"   looplab's bytecode compiled first ({'ok' if compiled.returncode == 0 else 'failed'}); "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
    rows: dict[str, list[float]] = {"looplab, fresh experiment (evaluates the baseline first)": [],
                                    "looplab, resumed experiment": []}
    if peers:
        rows["OpenEvolve (evaluates the initial program first)"] = []
    names = list(rows)
    for rep in range(repeats):
        folder = task(tmp, f"l-{rep}")
        for name in names:
            with server(0.0) as srv:
                if name.startswith("OpenEvolve"):
                    res = run_openevolve(task(tmp, f"l-oe-{rep}"), srv.url, 1)
                else:
                    res = run_looplab(folder, srv.url, 1)
            rows[name].append(min(r.at for r in srv.requests) - res["start"])
    for name, values in rows.items():
        print(f"   {name:55s} median {1000 * statistics.median(values):6.0f} ms  (runs: "
              f"{', '.join(f'{1000 * v:.0f}' for v in values)})")
    print(f"   target: looplab <= 500 ms on a warm machine; {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer attempts and repeats")
    ap.add_argument("--attempts", type=int, default=0, help="attempts per overhead run (default 60, quick 20)")
    ap.add_argument("--no-openevolve", action="store_true", help="looplab only")
    ap.add_argument("--only", default="1234", help="which figures, e.g. 13")
    args = ap.parse_args()
    peers = openevolve_installed() and not args.no_openevolve
    if not peers and not args.no_openevolve:
        print("OpenEvolve is not installed (pip install openevolve): looplab's figures only")
    n = args.attempts or (20 if args.quick else 60)
    print(f"2 cores? {os.cpu_count()} CPUs; sandbox: {os.environ.get('LOOPLAB_SANDBOX', 'auto')}, "
          f"warm hosts: {os.environ.get('LOOPLAB_WARM', 'on')}; {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as d:
        tmp = Path(d)
        if "1" in args.only:
            figure_overhead(tmp, n, 1 if args.quick else 2, peers)
        if "2" in args.only:
            figure_throughput(tmp, 4 if args.quick else 8, peers)
        if "3" in args.only:
            figure_store(tmp, n, [50, 5000] if not args.quick else [50, 1000], 1 if args.quick else 5)
        if "4" in args.only:
            figure_launch(tmp, 2 if args.quick else 3, peers)


if __name__ == "__main__":
    main()
