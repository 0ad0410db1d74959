"""The trusted supervisor of a Python harness: makes inputs, times calls, checks results, reports.

It never imports or runs candidate code: each case gets a fresh confined worker (channel.Worker,
forked by a clean zygote: zygote.py) that holds the candidate and sees only argument tuples. Inputs are made after the worker is up,
from OS randomness; every reply is parsed as untrusted JSON and checked against the experiment's
own check; the supervisor alone writes result lines (with the nonce) on its stdout.
"""

from __future__ import annotations

import json
import marshal
import random
import secrets
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looplab.harness.py import confine
from looplab.harness.py.channel import CaseFailed, Timed, Worker, decode
from looplab.harness.py.zygote import Zygote, ZygoteGone

Inputs = list[tuple]  # one batch: the argument tuple of every target call in one timed sample
MakeInputs = Callable[[random.Random], Inputs]
Check = Callable[[tuple, Any], "str | None"]  # (args, result) -> None when right, else "expected ..."

# Always loaded before confinement: an import statement can run once the worker can no longer open files.
BASE_IMPORTS = ("__future__", "math", "itertools", "functools", "operator", "collections")
USAGE = ("usage: bench.py --candidate FILE [--nonce S] [--max-reps N] [--seed X (reproduce)] "
         "[--call-timeout S] CASE...")


@dataclass
class Options:
    candidate: Path
    cases: list[str]
    nonce: str | None = None
    seed: str | None = None  # only to reproduce a run: looplab never passes one
    max_reps: int = 10
    call_timeout_s: float = 10.0


@dataclass
class Harness:
    """What an experiment declares; main() does the rest."""

    target: str
    cases: Mapping[str, MakeInputs]
    check: Check
    imports: Sequence[str] = ()
    budget_s: float = 0.25  # timed calls per case: as many as fit, 3..10
    checks_per_call: int | None = None  # None: every result of every call; else k chosen after the call
    reply_cap: int = 8 << 20
    cpu_slack: float = 1.05  # worker CPU over wall beyond this (plus 1 ms) means hidden parallel work


def parse_args(argv: Sequence[str]) -> Options:
    it = iter(argv)
    opts = Options(candidate=Path(), cases=[])
    candidate = None
    for arg in it:
        if arg == "--candidate":
            candidate = next(it)
        elif arg == "--nonce":  # echoed in every line: looplab keeps only lines that carry it
            opts.nonce = next(it)
        elif arg == "--seed":
            opts.seed = next(it)
        elif arg == "--max-reps":  # fewer timed calls, for quick validity checks
            opts.max_reps = max(1, int(next(it)))
        elif arg == "--call-timeout":
            opts.call_timeout_s = float(next(it))
        elif arg.startswith("--"):
            raise SystemExit(f"unknown option {arg}\n{USAGE}")
        else:
            opts.cases.append(arg)
    if candidate is None:
        raise SystemExit(USAGE)
    opts.candidate = Path(candidate)
    return opts


def experiment_imports(harness_file: str) -> list[str]:
    """[screen] allowed_imports of the experiment whose harness/ holds harness_file."""
    toml = Path(harness_file).resolve().parent.parent / "experiment.toml"
    try:
        data = tomllib.loads(toml.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return list(data.get("screen", {}).get("allowed_imports") or [])


def short(x: Any) -> str:
    """A value as an error message shows it: strings and sequences cut, with their length."""
    if isinstance(x, str):
        return repr(x if len(x) <= 40 else x[:40] + "...")
    if isinstance(x, list | tuple) and len(x) > 8:
        return repr(list(x[:8]))[:-1] + f", ...] of length {len(x)}"
    text = repr(x)
    return text if len(text) <= 60 else text[:60] + "..."


def _rng(opts: Options, case: str, call: int) -> random.Random:
    if opts.seed is not None:
        return random.Random(f"{opts.seed}:{case}:{call}")
    return random.Random(secrets.randbits(128))  # OS randomness, drawn after the worker exists


def _results(h: Harness, timed: Timed, batch: Inputs, call: int) -> list:
    reply = decode(timed.reply, f"on call {call}")
    if "raised" in reply:
        index = reply.get("index")
        where = (f" at {h.target}({', '.join(map(short, batch[index]))})"
                 if type(index) is int and 0 <= index < len(batch) else "")
        raise CaseFailed(f"raised {str(reply['raised'])[:300]} on call {call}{where}")
    if "unserialisable" in reply:
        raise CaseFailed(f"returned a value JSON cannot carry on call {call}: {str(reply['unserialisable'])[:200]}")
    results = reply.get("results")
    if type(results) is not list or len(results) != len(batch):
        got = len(results) if type(results) is list else "no"
        raise CaseFailed(f"the worker returned {got} results for {len(batch)} inputs on call {call}")
    if timed.cpu_ns > timed.wall_ns * h.cpu_slack + 1_000_000:
        raise CaseFailed(f"the worker used {timed.cpu_ns / 1e3:.0f} us of CPU in {timed.wall_ns / 1e3:.0f} us "
                         f"on call {call}: work ran in parallel (single thread only)")
    return results


def _verify(h: Harness, batch: Inputs, results: list, call: int) -> None:
    """Check every result, or k of them chosen now, after the call returned."""
    indices: Sequence[int] = range(len(batch))
    if h.checks_per_call is not None and call > 1 and len(batch) > h.checks_per_call:
        indices = sorted(secrets.SystemRandom().sample(range(len(batch)), h.checks_per_call))
    for i in indices:
        args, got = batch[i], results[i]
        try:
            wrong = h.check(args, got)
        except Exception as e:  # an odd value the check chokes on is still a wrong value
            wrong = f"which the check refused ({type(e).__name__}: {e})"
        if wrong:
            raise CaseFailed(f"{h.target}({', '.join(map(short, args))}) returned {repr(got)[:40]}, "
                             f"{wrong} on call {call}")


def run_case(h: Harness, opts: Options, case: str, zygote: Zygote | None) -> dict:
    """One case in a fresh worker: its result line."""
    if h.cases.get(case) is None:
        return {"case": case, "ok": False, "error": "unknown case"}
    worker = None
    try:
        if zygote is None:
            raise CaseFailed("the worker could not be started (see the log)", "crash")
        try:
            worker = Worker(zygote, opts.call_timeout_s, h.reply_cap)
        except ZygoteGone as e:
            raise CaseFailed(str(e), "crash") from None
        worker.wait_loaded()
        samples: list[float] = []
        reps, call, n = 1, 0, 0
        while call < reps + 1:
            call += 1
            batch = h.cases[case](_rng(opts, case, call))  # fresh inputs every call, made only now
            timed = worker.call(marshal.dumps(batch), call)
            _verify(h, batch, _results(h, timed, batch, call), call)
            n = len(batch)
            if call == 1:  # warm-up: sizes the number of timed calls
                reps = min(max(3, min(10, int(h.budget_s * 1e9) // max(timed.wall_ns, 1))), opts.max_reps)
            else:
                samples.append(timed.wall_ns / 1000.0)
        return {"case": case, "ok": True, "samples_us": samples, "inputs": n}
    except CaseFailed as f:
        return {"case": case, "ok": False, "error": f.error, "failure": f.failure}
    finally:
        if worker is not None:
            worker.close()


def _zygote(h: Harness, source: bytes, imports: list[str]) -> Zygote | None:
    try:
        return Zygote(source, h.target, imports)
    except (OSError, ZygoteGone) as e:
        print(f"looplab harness: cannot start the zygote: {e}", file=sys.stderr)
        return None


def main(target: str, cases: Mapping[str, MakeInputs], check: Check, *, imports: Sequence[str] | None = None,
         argv: Sequence[str] | None = None, **settings: Any) -> int:
    """Run the harness CLI: one result line per requested case on stdout. imports: modules a
    candidate may import (default: the experiment's [screen] allowed_imports)."""
    confine.protect_supervisor()
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if imports is None:
        imports = experiment_imports(sys.argv[0])
    h = Harness(target, cases, check, imports, **settings)
    source = opts.candidate.read_bytes()
    wanted = list(dict.fromkeys([*BASE_IMPORTS, *h.imports]))
    zygote = _zygote(h, source, wanted) if any(c in h.cases for c in opts.cases) else None
    try:
        for case in opts.cases:
            line = run_case(h, opts, case, zygote)
            if opts.nonce is not None:
                line = {"case": line["case"], "nonce": opts.nonce, **line}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
    finally:
        if zygote is not None:
            zygote.close()
    return 0
