"""Evaluator: real gcc builds (cached), the symbol check, the protocol reader and the failure mapping."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
from eval_helpers import FAST_MATMUL, matmul_experiment, private_dir

from looplab.config import Experiment, load_experiment
from looplab.evaluation.evaluator import Evaluator
from looplab.evaluation.protocol import read_results
from looplab.records import Outcome


@pytest.fixture(scope="module")
def exp() -> Experiment:
    d = private_dir()
    yield matmul_experiment(d, eval_timeout=5)
    shutil.rmtree(d, ignore_errors=True)


def evaluate(exp: Experiment, source: str, cases: list[str] | None = None, **kw) -> object:
    return asyncio.run(Evaluator(exp).evaluate(source, exp.search_cases if cases is None else cases, **kw))


def _with_body(body: str) -> str:
    return "void matmul(float* c, const float* a, const float* b, int n) {\n" + body + "\n}\n"


def test_baseline_evaluates_with_samples_per_case(exp: Experiment) -> None:
    ev = evaluate(exp, exp.baseline_source, exp.search_cases + exp.holdout_cases, seed=42)
    assert ev.ok and ev.failure is None and ev.seed == 42
    assert sorted(ev.cases) == ["n128", "n160", "n61", "n96"]
    assert all(len(c.samples) == 7 and all(s > 0 for s in c.samples) for c in ev.cases.values())


def test_builds_are_cached_by_source_and_run_in_parallel(exp: Experiment) -> None:
    evaluator = Evaluator(exp)
    sources = [FAST_MATMUL, FAST_MATMUL, FAST_MATMUL + "\n// variant\n"]

    async def go() -> list:
        return await asyncio.gather(*(evaluator.evaluate(s, ["n96"]) for s in sources))

    results = asyncio.run(go())
    assert all(r.ok for r in results)
    keys = {evaluator.source_key(s) for s in sources}
    built = {p.name for p in (exp.state_dir / "build").iterdir()}
    assert keys <= built and not any(".tmp-" in name for name in built)
    stamp = (exp.state_dir / "build" / evaluator.source_key(FAST_MATMUL) / "build.json").stat().st_mtime_ns
    assert asyncio.run(Evaluator(exp).evaluate(FAST_MATMUL, ["n96"])).ok
    assert (exp.state_dir / "build" / evaluator.source_key(FAST_MATMUL) / "build.json").stat().st_mtime_ns == stamp
    assert not list((exp.state_dir / "work").iterdir())  # private workdirs are cleaned up


def test_compile_error_names_the_line_without_cache_paths(exp: Experiment) -> None:
    ev = evaluate(exp, _with_body("c[0] = undefined_thing;"))
    assert ev.failure == Outcome.COMPILE_ERROR
    assert ev.reason.startswith("candidate.c:") and "undefined_thing" in ev.reason and ".looplab" not in ev.reason


@pytest.mark.parametrize("prefix, word", [
    ("int helper_table[4];\n", "helper_table"),
    ("double fast_exp(double x) { return x; }\n", "fast_exp"),
    ("#include <time.h>\nint clock_gettime(clockid_t k, struct timespec* t) { t->tv_sec = 0; t->tv_nsec = 0; return 0; }\n",
     "clock_gettime"),
    ("static volatile int seen;\n__attribute__((constructor)) static void early(void) { seen = 1; }\n",
     "constructor"),
])
def test_only_the_target_may_be_exported(exp: Experiment, prefix: str, word: str) -> None:
    ev = evaluate(exp, prefix + exp.baseline_source)
    assert ev.failure == Outcome.SCREEN_REJECTED and word in ev.reason


def test_static_helpers_are_fine(exp: Experiment) -> None:
    src = "static float twice(float x) { return 2 * x; }\n" + _with_body(
        "for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) { float s = 0;"
        " for (int k = 0; k < n; k++) s += a[i*n+k] * b[k*n+j]; c[i*n+j] = twice(s) / 2; }")
    assert evaluate(exp, src).ok


@pytest.mark.parametrize("body, outcome, words", [
    ("for (int i = 0; i < n * n; i++) c[i] = 0;", Outcome.INVALID, ["case n96", "on call 1"]),
    ("*(volatile int*)0 = 1;", Outcome.CRASH, ["SIGSEGV"]),
    ("for (volatile int spin = 1; spin;) {}", Outcome.TIMEOUT, ["timed out after 5s"]),
])
def test_failure_mapping(exp: Experiment, body: str, outcome: Outcome, words: list[str]) -> None:
    ev = evaluate(exp, _with_body(body))
    assert ev.failure == outcome and all(w in ev.reason for w in words), ev.reason


def test_a_failed_assert_reaches_the_model_as_an_abort_with_its_message(exp: Experiment) -> None:
    ev = evaluate(exp, "#include <assert.h>\n" + _with_body('assert(n < 0 && "n is never positive");'), ["n96"])
    assert ev.failure == Outcome.CRASH and "aborted (abort() or a failed assert" in ev.reason, ev.reason
    assert "forbidden" not in ev.reason and "n is never positive" in ev.log, ev.log


def _script_experiment(root: Path, script: str, *, command: str | None = None) -> Experiment:
    """An experiment whose 'harness' is a Python script printing whatever the test wants."""
    dest = root / f"script{abs(hash(script)) % 10**8}"
    dest.mkdir()
    (dest / "h.py").write_text(script)
    (dest / "base.py").write_text("x = 1\n")
    cmd = command or f"{sys.executable} {{experiment}}/h.py {{cases}}"
    (dest / "experiment.toml").write_text(f"""
[target]
language = "python"
function = "x"
baseline = "base.py"
[evaluate]
command = "{cmd}"
timeout_s = 30
[cases]
search = ["a b", "c"]
""")
    return load_experiment(dest)


@pytest.mark.parametrize("script, outcome, words", [
    ("import sys; print(sys.argv[1:])\nprint('{\"case\": \"a b\", \"ok\": true, \"samples\": [1]}')", Outcome.CRASH,
     ["before reporting case c"]),
    ("print('{\"case\": \"a b\", \"ok\": true, \"samples\": [1]}'); print('{\"case\": \"c\", \"ok\": true, "
     "\"samples\": [2]}'); raise SystemExit(4)", Outcome.CRASH, ["exited with code 4 after reporting"]),
    ("import os; os.kill(os.getpid(), 11)", Outcome.CRASH, ["killed by SIGSEGV"]),
])
def test_script_failures(script: str, outcome: Outcome, words: list[str]) -> None:
    d = private_dir()
    try:
        ev = evaluate(_script_experiment(d, script), "x = 2\n")
        assert ev.failure == outcome and all(w in ev.reason for w in words), ev.reason
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cases_are_shell_quoted_and_extra_metrics_kept() -> None:
    script = ("import json, sys\nfor c in sys.argv[1:]:\n"
              "    print('noise line'); print(json.dumps({'case': c, 'ok': True, 'samples_us': [3, 1, 2], 'gflops': 7}))")
    d = private_dir()
    try:
        ev = evaluate(_script_experiment(d, script), "x = 2\n")
        assert ev.ok and sorted(ev.cases) == ["a b", "c"]
        assert ev.cases["a b"].median == 2 and ev.cases["a b"].metrics == {"gflops": 7}
        assert "noise line" in ev.log
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_what_looplab_wrote_is_hidden_from_the_harness() -> None:
    script = ("import json, os, sys\nroot = os.path.dirname(os.path.abspath(__file__))\n"
              "for name in ('SCORES.md', 'MEMORY.json'):\n    print(name, repr(open(os.path.join(root, name)).read()))\n"
              "print('runs', os.listdir(os.path.join(root, 'runs')))\n"
              "for c in sys.argv[1:]:\n    print(json.dumps({'case': c, 'ok': True, 'samples': [1]}))")
    d = private_dir()
    try:
        exp = _script_experiment(d, script)
        for name in ("SCORES.md", "MEMORY.json", "runs/7/prompt.md"):
            (exp.root / name).parent.mkdir(parents=True, exist_ok=True)
            (exp.root / name).write_text("holdout case zz_hidden_shape")
        ev = evaluate(exp, "x = 2\n")
        assert ev.ok and "SCORES.md ''" in ev.log and "runs []" in ev.log and "zz_hidden_shape" not in ev.log
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_openevolve_evaluator_is_run_in_the_sandbox() -> None:
    d = private_dir()
    try:
        dest = d / "oe"
        dest.mkdir()
        (dest / "initial_program.py").write_text("def solve():\n    return 3\n")
        (dest / "evaluator.py").write_text(
            "import importlib.util, os\n"
            "def evaluate(program_path):\n"
            "    spec = importlib.util.spec_from_file_location('p', program_path)\n"
            "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "    v = m.solve()\n"
            "    if v < 0: raise ValueError('negative')\n"
            "    return {'combined_score': v / 10, 'value': v, 'has_key': 'OPENAI_API_KEY' in os.environ}\n")
        (dest / "experiment.toml").write_text(
            '[target]\nlanguage = "python"\nfunction = "solve"\nbaseline = "initial_program.py"\n'
            '[evaluate]\nevaluator = "evaluator.py"\ntimeout_s = 30\n')
        exp = load_experiment(dest)
        evaluator = Evaluator(exp)
        assert evaluator.direction == "maximize" and evaluator.search_cases == ["score"]
        ev = asyncio.run(evaluator.evaluate("def solve():\n    return 7\n", []))
        assert ev.ok and ev.cases["score"].samples == [0.7]
        assert ev.cases["score"].metrics == {"combined_score": 0.7, "value": 7, "has_key": False}
        bad = asyncio.run(evaluator.evaluate("def solve():\n    return -1\n", []))
        assert bad.failure == Outcome.INVALID and "ValueError: negative" in bad.reason
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- the protocol reader, line by line ---------------------------------------------------------------

def _line(case: str, ok: bool = True, samples: str = "[1.0, 2.0]", nonce: str | None = None) -> str:
    extra = f', "nonce": "{nonce}"' if nonce is not None else ""
    return f'{{"case": "{case}", "ok": {str(ok).lower()}, "samples_us": {samples}{extra}}}'


def test_reader_ignores_noise_and_unrequested_cases() -> None:
    out = "\n".join(["hello", "{not json", _line("zzz"), _line("a"), "[1, 2]", _line("b", samples="[3]")])
    read = read_results(out, ["a", "b"])
    assert read.failure is None and sorted(read.results) == ["a", "b"] and read.results["b"].samples == [3.0]


@pytest.mark.parametrize("lines, nonce, outcome, words", [
    ([_line("a"), _line("a")], None, Outcome.INVALID, "duplicate result line for case a"),
    ([_line("a", nonce="good"), _line("b", nonce="evil")], "good", Outcome.INVALID, "forged result line for case b"),
    ([_line("a")], "good", Outcome.INVALID, "forged"),
    ([_line("a", samples="[NaN]")], None, Outcome.INVALID, "non-finite"),
    ([_line("a", samples="[Infinity, 1]")], None, Outcome.INVALID, "non-finite"),
    ([_line("a", samples="[0.0]")], None, Outcome.INVALID, "non-positive timing"),
    ([_line("a", samples="[]")], None, Outcome.CRASH, "no samples"),
    ([_line("a", samples='["fast"]')], None, Outcome.CRASH, "not numbers"),
])
def test_reader_rejects(lines: list[str], nonce: str | None, outcome: Outcome, words: str) -> None:
    read = read_results("\n".join(lines), ["a", "b"], nonce=nonce)
    assert read.failure == outcome and words in read.reason


def test_reader_accepts_scores_and_all_cases_when_none_requested() -> None:
    read = read_results('{"case": "x", "ok": true, "score": -2.5}\n{"case": "y", "ok": false, "error": "bad"}', [])
    assert read.results["x"].samples == [-2.5] and read.results["y"].error == "bad" and read.failure is None
