"""build → validate → measure one candidate, through the sandbox, into an Evaluation.

The evaluator speaks a language-neutral protocol: a command printing one JSON object per case,
{"case", "ok", "samples_us" | "samples" | "score", "error", ...extra metrics}. An evaluator file in the
OpenEvolve or ShinkaEvolve style is run by a small runner speaking the same protocol, with its folder as
working directory (looplab/compat/evaluators.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import shlex
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from looplab import harness
from looplab.compat import evaluators
from looplab.config import Experiment
from looplab.evaluation.build import Build, build_candidate, experiment_fingerprint, private_paths, substitute
from looplab.evaluation.protocol import read_results
from looplab.records import CaseResult, Evaluation, Outcome
from looplab.sandbox import warm
from looplab.sandbox.command import SandboxResult, run_sandboxed, scrub_secrets
from looplab.sandbox.timing_lock import timing_cpu

SCORE_CASE = "score"  # the one case of an evaluator file (OpenEvolve or Shinka style)
_LOG_CHARS = 4000

def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class Evaluator:
    """Builds (cached by source hash) and evaluates candidates of one experiment."""

    def __init__(self, experiment: Experiment, *, warm_hosts: bool = True):
        """warm_hosts: evaluator files run in warm hosts where they can (an evaluator used for one run only,
        as on a Ray worker, would start a host for nothing)."""
        self.experiment = experiment
        self.config = experiment.config
        self.fingerprint = experiment_fingerprint(experiment)
        self._locks: dict[str, asyncio.Lock] = {}
        self._warm: warm.WarmPool | None = None
        self._warm_hosts = warm_hosts
        self._workspace = functools.partial(evaluators.workspace, experiment)  # one object: the pool's key for folders made ahead

    def warm_pool(self) -> warm.WarmPool | None:
        """Warm hosts for an evaluator file, where they can serve (looplab/sandbox/warm.py); None: runs are cold."""
        if not self.openevolve or not self._warm_hosts or not warm.available():
            return None
        if self._warm is None:
            exp = self.experiment
            imports = warm.evaluator_imports([exp.root / self.config.evaluate.evaluator, exp.baseline_path], exp.root)
            self._warm = warm.pool_for(warm.jobs_root(exp.state_dir), readonly=[exp.root], hidden=private_paths(exp),
                                       shadow=[exp.root], imports=imports)
        return self._warm

    def warm_up(self) -> None:
        """Start a warm host now, if evaluations will use one: it gets ready while looplab starts."""
        pool = self.warm_pool()
        if pool is not None:
            pool.prestart()

    def close(self) -> None:
        """Stop the warm hosts (they also stop when looplab exits; other evaluators of the experiment in this
        process share them)."""
        if self._warm is not None:
            self._warm.close()

    @property
    def openevolve(self) -> bool:
        """An evaluator file (OpenEvolve or Shinka style) instead of a command."""
        return bool(self.config.evaluate.evaluator)

    @property
    def unbuilt(self) -> bool:
        """An evaluator file with nothing to build or screen (no build command, one file that is not C): a warm
        evaluation writes the candidate straight into its folder, without the build cache."""
        exp = self.experiment
        return self.openevolve and not self.config.build.command and not exp.is_files and exp.language != "c"

    @property
    def direction(self) -> str:
        """OpenEvolve and Shinka scores are always maximised; otherwise experiment.toml decides."""
        return "maximize" if self.openevolve else self.config.objective.direction

    @property
    def search_cases(self) -> list[str]:
        return [SCORE_CASE] if self.openevolve else self.experiment.search_cases

    @property
    def holdout_cases(self) -> list[str]:
        return [] if self.openevolve else self.experiment.holdout_cases

    def source_key(self, source: str) -> str:
        return hashlib.sha256((self.fingerprint + "\0" + source).encode()).hexdigest()[:24]

    async def build(self, source: str) -> Build:
        key = self.source_key(source)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one build per source; different sources build in parallel
            return await build_candidate(self.experiment, source, key)

    async def evaluate(self, source: str, cases: list[str], *, seed: int | None = None,
                       timed: bool = False) -> Evaluation:
        """timed: a timing run, pinned to this machine's timing core (the caller holds the timing lock)."""
        start = time.monotonic()
        seed = secrets.randbelow(2**31) if seed is None else seed
        cases = [SCORE_CASE] if self.openevolve else list(cases)
        pin_cpu = timing_cpu() if timed else None
        ev = await self._run_unbuilt(source, cases, pin_cpu) if self.unbuilt else None
        if ev is None:
            build = await self.build(source)
            if not build.ok:
                return Evaluation(ok=False, failure=build.failure, reason=build.reason, log=build.log,
                                  seed=seed, wall_s=time.monotonic() - start)
            ev = await self._run(build, cases, seed, pin_cpu)
        ev.seed, ev.wall_s = seed, time.monotonic() - start
        return ev

    async def _run_unbuilt(self, source: str, cases: list[str], pin_cpu: int | None) -> Evaluation | None:
        """A warm evaluation of a candidate with nothing to build; None: no warm host (a cold run, built)."""
        pool = self.warm_pool()
        if pool is None:
            return None
        nonce = secrets.token_hex(16)
        timeout = evaluators.sandbox_timeout_s(self.config.evaluate)
        name = f"candidate.{self.experiment.ext}"
        res = await self._run_warm(pool, name, lambda path: path.write_text(source), nonce, timeout, pin_cpu)
        return None if res is None else self._interpret(res, cases, nonce, timeout)

    async def _run(self, build: Build, cases: list[str], seed: int, pin_cpu: int | None) -> Evaluation:
        exp, cfg = self.experiment, self.config
        nonce = secrets.token_hex(16)
        pool = self.warm_pool()
        if pool is not None:  # a fresh child of a warm host (None: no host could start, so a cold run)
            timeout = evaluators.sandbox_timeout_s(cfg.evaluate)
            warm_res = await self._run_warm(pool, build.candidate.name, lambda path: shutil.copy2(build.candidate, path),
                                            nonce, timeout, pin_cpu)
            if warm_res is not None:
                return self._interpret(warm_res, cases, nonce, timeout)
        work = exp.state_dir / "work" / secrets.token_hex(8)
        work.mkdir(parents=True)
        readonly = [exp.root, build.dir]
        timeout = cfg.evaluate.timeout_s
        if self.openevolve:
            evaluators.workspace(exp, work)  # the evaluator's folder is its working directory
            argv = evaluators.argv(exp, work, build.candidate, nonce)
            readonly += harness.python_paths()
            timeout = evaluators.sandbox_timeout_s(cfg.evaluate)
            check_nonce: str | None = nonce
        else:
            values = {"candidate": str(build.candidate), "workdir": str(work), "experiment": str(exp.root),
                      "binary": str(build.binary), "seed": str(seed), "nonce": nonce,
                      "cases": " ".join(shlex.quote(c) for c in cases), **harness.placeholders()}
            readonly += harness.readonly_paths(cfg.evaluate.command)
            argv = ["/bin/sh", "-c", substitute(cfg.evaluate.command, values)]
            check_nonce = nonce if "{nonce}" in cfg.evaluate.command else None
        try:
            res = await run_sandboxed(argv, workdir=work, readonly=readonly, timeout_s=timeout,
                                      limits=cfg.limits, pin_cpu=pin_cpu,
                                      hidden=private_paths(exp))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self._interpret(res, cases, check_nonce, timeout)

    async def _run_warm(self, pool: warm.WarmPool, name: str, write: Callable[[Path], object], nonce: str,
                        timeout: float, pin_cpu: int | None) -> SandboxResult | None:
        """write(path) puts the candidate, named name, in a folder of its own in the child's copy of the experiment."""
        exp = self.experiment
        own = f".looplab-candidate-{secrets.token_hex(4)}"  # beside the evaluator's files, not among them

        def prepare(work: Path) -> list[str]:
            (work / own).mkdir()
            write(work / own / name)
            return evaluators.argv(exp, work, work / own / name, nonce)[3:]

        script = evaluators.argv(exp, exp.root, exp.root, nonce)[2]
        return await pool.run(script, prepare=prepare, timeout_s=timeout, limits=self.config.limits,
                              pin_cpu=pin_cpu, template=self._workspace)

    def _interpret(self, res: SandboxResult, cases: list[str], nonce: str | None, timeout: float) -> Evaluation:
        limits = self.config.limits
        log = _log_of(res)

        def failed(outcome: Outcome, reason: str, results: dict[str, CaseResult] | None = None) -> Evaluation:
            return Evaluation(ok=False, cases=results or {}, failure=outcome, reason=scrub_secrets(reason), log=log)

        if res.infra_error:
            return failed(Outcome.INFRA_ERROR, f"sandbox failed: {res.infra_error}")
        if res.timed_out:
            return failed(Outcome.TIMEOUT, f"timed out after {timeout:g}s")
        if res.output_truncated:
            return failed(Outcome.CRASH, f"output flood: more than {limits.output_kb} KB of output, cut off")
        if res.limit_hit == "cpu":
            return failed(Outcome.TIMEOUT, f"cpu limit of {limits.cpu_s}s exceeded (SIGXCPU)")
        read = read_results(res.stdout, cases, nonce=nonce, timing="samples_us")
        if not read.results and self.openevolve and evaluators.watchdog_ended(res.returncode, res.stderr):
            return failed(Outcome.TIMEOUT, f"timed out: a call ran past evaluator.timeout "
                          f"({self.config.evaluate.timeout_s:g}s) where its timer could not stop it (in C code?)")
        if read.failure:
            return failed(read.failure, read.reason, read.results)
        results = read.results
        bad = [c for c in results.values() if not c.ok]
        if bad:
            return failed(bad[0].failure or Outcome.INVALID, f"case {bad[0].case}: {bad[0].error or 'failed validation'}",
                          results)
        if res.signal is not None:
            hint = {"memory": f" (memory limit {limits.memory_mb} MB?)", "file size": f" (file size limit {limits.file_mb} MB)",
                    "processes": f" (process limit {limits.max_procs}?)"}.get(res.limit_hit or "", "")
            return failed(Outcome.CRASH, f"killed by {signal_name(res.signal)}{hint}", results)
        missing = [c for c in cases if c not in results]
        if missing or not results:
            what = f"case {missing[0]}" if missing else "any case"
            return failed(Outcome.CRASH, f"exited with code {res.returncode} before reporting {what}"
                          + ("" if res.returncode else " (exit inside the target?)"), results)
        if res.returncode != 0:
            return failed(Outcome.CRASH, f"exited with code {res.returncode} after reporting its cases", results)
        return Evaluation(ok=True, cases=results, log=log)


def _log_of(res: SandboxResult) -> str:
    """stderr plus the non-protocol stdout lines, scrubbed and capped (what runs/ may keep)."""
    other = [ln for ln in res.stdout.splitlines() if not ln.lstrip().startswith('{"case"')]
    text = res.stderr + ("\n" if res.stderr and other else "") + "\n".join(other)
    text = scrub_secrets(text)
    return text if len(text) <= _LOG_CHARS else text[:_LOG_CHARS // 2] + "\n[...]\n" + text[-_LOG_CHARS // 2:]
