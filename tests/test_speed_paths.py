"""What makes an attempt cheap must not make it wrong: one evaluator run where one is enough, renderings
current at the end of a run, a cached bwrap command line that still sees what changed, store rows read
once that still show every write."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from looplab.acceptance import paired
from looplab.config import load_experiment
from looplab.evaluation.evaluator import Evaluator
from looplab.loop import RunOptions, run_search
from looplab.models import provider_from_spec
from looplab.records import CaseResult, Evaluation, Outcome, Usage
from looplab.report import scores as report
from looplab.sandbox import command as sandbox
from looplab.sandbox import mounts as sandbox_mounts
from looplab.store import Store

PROGRAM = '''
# EVOLVE-BLOCK-START
def score():
    return {value}
# EVOLVE-BLOCK-END
'''
EVALUATOR = '''
import importlib.util

def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    return {"combined_score": float(program.score())}
'''


class Quiet:
    def started(self, *a): ...
    def finished(self, row): ...
    def note(self, text): ...


def _task(tmp_path: Path, evaluator: str, strategy: str, values: tuple[float, ...]) -> tuple[Path, Path]:
    """An OpenEvolve-shaped folder scoring PROGRAM's value, and a replay file proposing each of values."""
    root = tmp_path / "task"
    root.mkdir()
    (root / "initial_program.py").write_text(textwrap.dedent(PROGRAM.format(value=1.0)))
    (root / "evaluator.py").write_text(textwrap.dedent(evaluator))
    (root / "config.yaml").write_text("evaluator:\n  timeout: 20\n  cascade_evaluation: false\n")
    os.chmod(tmp_path, 0o755)
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"content": f"Strategy: {strategy} {v}\n\n```python\n"
                                                      f"{textwrap.dedent(PROGRAM.format(value=v))}```\n"}) + "\n"
                               for v in values))
    return root, replies


def test_renderings_are_current_at_the_end_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, replies = _task(tmp_path, EVALUATOR, "more", (2.0, 0.5, 3.0))
    monkeypatch.setattr(report, "REFRESH_S", 3600.0)  # nothing is rewritten during the run but the first
    writes = []
    real = report.write_scores
    monkeypatch.setattr(report, "write_scores", lambda *a: writes.append(1) or real(*a))
    runs: list[str] = []
    evaluate = Evaluator.evaluate

    async def counted(self, source, *args, **kwargs):
        runs.append(source)
        return await evaluate(self, source, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "evaluate", counted)
    experiment = load_experiment(root)
    asyncio.run(run_search(experiment, provider_from_spec(f"replay:{replies}"), RunOptions(loop=3, seed=1), Quiet()))
    scores = json.loads((root / "SCORES.json").read_text())
    assert scores["attempts"] == 3 and scores["in_flight"] == 0
    assert scores["best"]["metric"] == 3.0  # the last winner, written at the end of the run
    assert len(writes) < 3 + 2  # not once per attempt (winners and the end write at once)
    memory = json.loads((root / "MEMORY.json").read_text())
    assert [w["id"] for w in memory["worked"]] == [1, 3]
    # One run where one is enough (a deterministic score): the baseline twice (its noise check), a loser
    # once, a winner once more to show its score again; the incumbent never, its values are recorded.
    assert len(runs) == 2 + 2 + 1 + 2
    assert runs.count(experiment.baseline_source) == 2


SLOW_EVALUATOR = EVALUATOR.replace("    return {", "    import time\n    time.sleep(0.4)\n    return {")


def test_score_evaluations_run_in_parallel_without_the_timing_lock(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root, replies = _task(tmp_path, SLOW_EVALUATOR, "less", (0.1, 0.2, 0.3, 0.4))
    locked = []
    monkeypatch.setattr(paired, "timing_lock", lambda *a, **k: locked.append(1) or contextlib.nullcontext())
    spans: list[tuple[float, float]] = []
    evaluate = Evaluator.evaluate

    async def timed(self, *args, **kwargs):
        start = time.monotonic()
        try:
            return await evaluate(self, *args, **kwargs)
        finally:
            spans.append((start, time.monotonic()))

    monkeypatch.setattr(Evaluator, "evaluate", timed)
    experiment = load_experiment(root)
    asyncio.run(run_search(experiment, provider_from_spec(f"replay:{replies}"),
                           RunOptions(loop=4, workers=4, seed=1), Quiet()))
    candidates = sorted(spans)[2:]  # after the baseline's two
    assert len(candidates) == 4 and not locked
    # The four candidates' evaluations (0.4 s each at least) overlap: at some moment all are running.
    assert max(s for s, _ in candidates) < min(e for _, e in candidates), candidates


def test_a_cached_bwrap_command_line_sees_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    root.mkdir()
    (root / "data.txt").write_text("x")
    (root / "SCORES.json").write_text("{}")
    hidden = [root / "SCORES.json", root / ".looplab"]
    a = sandbox_mounts.bwrap_argv(root / ".looplab" / "work" / "a", [root], hidden, as_root=False)
    b = sandbox_mounts.bwrap_argv(root / ".looplab" / "work" / "b", [root], hidden, as_root=False)
    assert [x.replace("/work/b", "/work/a") for x in b] == a and str(root / ".looplab" / "work" / "b") in b
    (root / "new.txt").write_text("y")  # a new entry beside a hidden file: bound from now on
    c = sandbox_mounts.bwrap_argv(root / ".looplab" / "work" / "a", [root], hidden, as_root=False)
    assert str(root / "new.txt") in c and str(root / "new.txt") not in a
    # A shadowed folder lists only what it held: a file written there later never shows.
    d = sandbox_mounts.bwrap_argv(tmp_path / "w", [root], [], as_root=False, shadow=[root])
    assert str(root / "data.txt") in d and str(root / "later.txt") not in d


@pytest.mark.skipif(not sandbox._bwrap_status()[0], reason="needs bubblewrap")
def test_a_shadowed_folder_hides_what_is_written_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sandbox.MODE_ENV, "bwrap")
    root = tmp_path / "exp"
    root.mkdir()
    (root / "data.txt").write_text("x")
    os.chmod(tmp_path, 0o755)
    argv = sandbox_mounts.bwrap_argv(tmp_path / "w", [root], [], as_root=os.geteuid() == 0, shadow=[root])
    (tmp_path / "w").mkdir()
    (root / "SCORES.json").write_text("secret")  # written after the sandbox's view was fixed
    import subprocess

    out = subprocess.run([*argv, "ls", str(root)], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["data.txt"], out.stderr


def test_rows_read_once_still_show_every_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    ev = Evaluation(ok=True, cases={"score": CaseResult("score", True, [1.0])})
    first = store.begin_attempt(model="m")
    assert store.attempts(light=True)[0].outcome is None
    store.finish_attempt(first, outcome=Outcome.ACCEPTED, source="a", evaluation=ev, accepting="k1")
    light, full = store.attempts(light=True)[0], store.attempt(first)
    assert light.outcome is Outcome.ACCEPTED and full.accepting == "k1" and light.source is None and full.source == "a"
    assert store.attempts(light=True)[0] is light  # read again: not parsed again
    store.end_acceptance(first, "abc123")
    assert store.attempts(light=True)[0].commit == "abc123" and store.attempt(first).accepting is None
    store.record_call(attempt_id=first, model="m", kind="propose", usage=Usage(10, 5, 0, 0.01), latency_s=0.1)
    assert store.attempt(first).usage.prompt_tokens == 10
    second = store.begin_attempt(model="m")
    store.finish_attempt(second, outcome=Outcome.SLOWER, source="b", evaluation=ev)
    assert [r.outcome for r in store.attempts(light=True, newest_first=True, limit=1)] == [Outcome.SLOWER]
    store.close()


LAUNCH = '''
import builtins, io, sys, threading
loaded_by = {}
original_import = builtins.__import__

def spy(name, *args, **kwargs):  # who imports the heavy SDKs first, and on which thread
    top = name.partition(".")[0]
    if top in ("openai", "genai_prices", "rich", "anthropic") and top not in sys.modules:
        loaded_by.setdefault(top, threading.current_thread().name)
    return original_import(name, *args, **kwargs)

builtins.__import__ = spy
import looplab.cli
from looplab.cli import _cmd_run  # noqa: F401
from looplab.compat import run_settings  # noqa: F401 — what _cmd_run imports before the provider
from looplab.config import load_experiment  # noqa: F401
from looplab.evaluation.evaluator import Evaluator  # noqa: F401
from looplab.loop import RunOptions, run_search  # noqa: F401
from looplab.models import provider_from_spec
from looplab.models.priced import PricedProvider
from looplab.models.usage import parse_price
from looplab.report.closing import closing_lines  # noqa: F401
from looplab.report.progress import make_progress
from looplab.report.status import print_status  # noqa: F401
make_progress(io.StringIO()).note("a pipe gets plain lines")
PricedProvider(provider_from_spec("command:true"), parse_price("1/2"))
print(sorted(loaded_by), flush=True)
provider = provider_from_spec("openai:m", base_url="http://127.0.0.1:9", env={})
main = threading.current_thread()
for thread in threading.enumerate():
    if thread is not main:
        thread.join()
print(sorted(loaded_by.items()))
'''


def test_launch_loads_no_sdk_on_the_main_thread(tmp_path: Path) -> None:
    """Launch → first model request: the run path imports neither the SDKs, genai-prices nor rich (in a pipe);
    an openai: provider loads its SDK in a thread of its own while the run prepares."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", LAUNCH], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.splitlines()
    assert before == "[]"
    assert after == "[('openai', 'looplab-openai-load')]"
