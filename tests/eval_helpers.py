"""Shared by the evaluation tests: private copies of the matmul fixture and a tiny Python experiment."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from looplab.config import Experiment, load_experiment

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = FIXTURES / "hostile"

# Genuinely faster: ikj loop order over 8-wide vectors (plain ikj is no faster than ijk at -O2).
FAST_MATMUL = """typedef float v8 __attribute__((vector_size(32), aligned(4)));
void matmul(float* restrict c, const float* restrict a, const float* restrict b, int n) {
    for (int i = 0; i < n; i++) {
        float* ci = c + (long)i * n;
        for (int j = 0; j < n; j++) ci[j] = 0.0f;
        for (int k = 0; k < n; k++) {
            const float aik = a[(long)i * n + k];
            const float* bk = b + (long)k * n;
            int j = 0;
            for (; j + 8 <= n; j += 8) *(v8*)(ci + j) += aik * *(const v8*)(bk + j);
            for (; j < n; j++) ci[j] += aik * bk[j];
        }
    }
}
"""


def private_dir() -> Path:
    """A temp dir any uid can reach (pytest's tmp_path sits under a root-only folder)."""
    d = Path(tempfile.mkdtemp(prefix="looplab-test-"))
    os.chmod(d, 0o755)
    return d


# The fixture's harness on looplab's library: the trusted supervisor and the worker holding the candidate.
BUILD = ("gcc -O2 -std=gnu11 -I{looplab_include} -o {binary} {experiment}/harness/bench.c {looplab_include}/supervisor.c"
         " -lm -lseccomp && gcc -O2 -std=gnu11 -I{looplab_include} -DLOOPLAB_WORKER -o {binary}.worker"
         " {experiment}/harness/bench.c {looplab_include}/worker.c {candidate} -lm -lseccomp")


def matmul_experiment(root: Path, *, nonce: bool = True, eval_timeout: float = 20, rounds: int = 3,
                      max_rounds: int = 6, min_gain: float = 0.02, limits: str = "") -> Experiment:
    """A copy of tests/fixtures/matmul with test-sized timeouts and limits."""
    dest = root / "matmul"
    shutil.copytree(FIXTURES / "matmul", dest)
    cases = "{binary} --nonce {nonce} {cases}" if nonce else "{binary} {cases}"
    (dest / "experiment.toml").write_text(f"""
name = "matmul"
[target]
language = "c"
function = "matmul"
baseline = "naive.c"
[build]
command = "{BUILD}"
timeout_s = 120
[evaluate]
command = "{cases}"
timeout_s = {eval_timeout}
[cases]
search = ["n96", "n128", "n160"]
holdout = ["n61"]
[objective]
min_gain = {min_gain}
rounds = {rounds}
max_rounds = {max_rounds}
[limits]
cpu_s = 30
memory_mb = 512
max_procs = 16
file_mb = 16
output_kb = 64
{limits}
""")
    return load_experiment(dest)


_HARNESS = r'''
import ast, json, os, random, sys
speed = ast.literal_eval(open(sys.argv[1]).read())
random.seed(os.urandom(8))
base = {"a": 1000.0, "b": 2000.0, "c": 3000.0, "hidden_case_7": 500.0}
for case in sys.argv[3:]:
    if case in speed.get("fail", {}):
        print(json.dumps({"case": case, "ok": False, "error": speed["fail"][case]}))
        continue
    if speed.get("crash"):
        sys.exit(3)
    t = base[case] / speed.get(case, speed.get("all", 1.0))
    print(json.dumps({"case": case, "ok": True, "samples_us": [t * random.gauss(1, 0.01) for _ in range(5)]}))
'''


def speed_experiment(root: Path, *, holdout: bool = True, rounds: int = 3, max_rounds: int = 6) -> Experiment:
    """A Python 'harness' whose candidate is a dict of per-case speed factors: judge logic, fast."""
    dest = root / "speed"
    dest.mkdir()
    (dest / "harness.py").write_text(_HARNESS)
    (dest / "base.py").write_text('{"all": 1.0}\n')
    (dest / "experiment.toml").write_text(f"""
[target]
language = "python"
function = "speed"
baseline = "base.py"
[evaluate]
command = "{sys.executable} {{experiment}}/harness.py {{candidate}} {{seed}} {{cases}}"
timeout_s = 30
[cases]
search = ["a", "b", "c"]
holdout = {'["hidden_case_7"]' if holdout else '[]'}
[objective]
min_gain = 0.02
rounds = {rounds}
max_rounds = {max_rounds}
""")
    return load_experiment(dest)


def hostile_reply(name: str, **values: str) -> str:
    """The C code block of a hostile model reply in tests/fixtures/hostile/<name>.md, placeholders filled."""
    text = (HOSTILE / f"{name}.md").read_text()
    code = re.search(r"```c\n(.*?)```", text, re.S)
    assert code, f"{name}.md has no ```c block"
    source = code.group(1)
    for key, value in values.items():
        source = source.replace("@" + key + "@", value)
    return source
