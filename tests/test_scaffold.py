"""`looplab new`: the scaffolded experiments load, build with real gcc, and pass their own harness."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_helpers import build_c, looplab_eval, run_c, run_py

from looplab.config import load_experiment
from looplab.errors import UserError
from looplab.scaffold import scaffold


def _no_placeholders_left(root):
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "__NAME__" not in text and "__FUNC__" not in text, path


def test_c_scaffold_builds_and_passes_its_own_harness(tmp_path):
    root = scaffold("my-kernel", "c", tmp_path)
    assert root == tmp_path / "my-kernel"
    exp = load_experiment(root)
    assert exp.name == "my-kernel" and exp.target == "my_kernel" and exp.language == "c"
    assert "void my_kernel(" in exp.baseline_source and "my_kernel" in exp.task_text
    _no_placeholders_left(root)
    assert not (root / "harness" / "looplab_harness.h").exists()  # the library is looplab's, not a copy
    assert "{looplab_include}/supervisor.c" in exp.config.build.command

    binary = build_c(root, exp.baseline_path, tmp_path / "build")
    res = run_c(binary, exp.search_cases + exp.holdout_cases, seed=3, max_reps=1)
    assert all(r["ok"] for r in res.values()), res


def test_c_scaffold_harness_rejects_a_wrong_candidate(tmp_path):
    root = scaffold("scan", "c", tmp_path)
    wrong = tmp_path / "wrong.c"
    wrong.write_text("void scan(float* out, const float* x, int n) { for (int i = 0; i < n; i++) out[i] = x[i]; }\n")
    res = run_c(build_c(root, wrong, tmp_path / "build"), ["n1k"], seed=4)
    assert res["n1k"]["ok"] is False and "expected" in res["n1k"]["error"]


def test_python_scaffold_passes_its_own_harness_and_rejects_a_wrong_candidate(tmp_path):
    root = scaffold("lis", "python", tmp_path)
    exp = load_experiment(root)
    assert exp.target == "lis" and exp.language == "python" and exp.config.build.command == ""
    _no_placeholders_left(root)
    res = run_py(root, exp.baseline_path, exp.search_cases + exp.holdout_cases, seed=5, max_reps=1)
    assert all(r["ok"] for r in res.values()), res
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def lis(xs):\n    return len(set(xs))\n")
    res = run_py(root, wrong, ["random_100"], seed=6)
    assert res["random_100"]["ok"] is False and "expected" in res["random_100"]["error"]


@pytest.mark.parametrize("name,lang,words", [
    ("1abc", "c", "must start with a letter"),
    ("has space", "python", "must start with a letter"),
    ("x" * 65, "c", "at most 64"),
    ("kernel", "rust", "--lang"),
    ("int", "c", "C keyword"),
    ("memcpy", "c", "library name"),
    ("ll_timer", "c", "library name"),
    ("class", "python", "Python keyword"),
])
def test_scaffold_refuses_bad_names_with_a_fix(tmp_path, name, lang, words):
    with pytest.raises(UserError) as e:
        scaffold(name, lang, tmp_path)
    assert words in str(e.value) and "(fix:" in str(e.value)
    assert not any(tmp_path.iterdir())  # nothing half-created


def test_scaffold_does_not_overwrite_an_existing_experiment(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        scaffold("taken", "c", tmp_path)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert scaffold("empty", "python", tmp_path).is_dir()  # an empty folder is fine
    (tmp_path / "empty2").mkdir()
    assert (scaffold("empty2", "c", tmp_path) / "experiment.toml").is_file()


@pytest.mark.parametrize("lang,ext", [("c", "c"), ("python", "py")])
def test_scaffolded_baseline_passes_looplab_eval(tmp_path, lang, ext):
    root = scaffold("fresh", lang, tmp_path)
    verdict = looplab_eval(root, root / f"naive.{ext}")
    assert verdict["ok"] is True, verdict
    assert all(c["ok"] for c in verdict["cases"].values())


def test_looplab_new_command_creates_the_experiment(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from looplab.cli import main; sys.exit(main())",
         "new", "dot-kernel", "--lang", "c"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert load_experiment(tmp_path / "dot-kernel").target == "dot_kernel"
    again = subprocess.run(
        [sys.executable, "-c", "import sys; from looplab.cli import main; sys.exit(main())",
         "new", "dot-kernel", "--lang", "c"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("kind", ["score", "files"])
def test_new_scaffolds_a_score_and_a_files_experiment_that_run(tmp_path: Path, kind: str) -> None:
    from looplab import filesets
    from looplab.config import load_experiment
    from looplab.evaluation.assess import evaluate_file
    from looplab.scaffold import scaffold

    parent = tmp_path / "p"
    parent.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(parent, 0o755)
    root = scaffold(f"spread-{kind}", "python", parent, kind)
    exp = load_experiment(root)
    assert exp.config.objective.kind == "score" and exp.is_files == (kind == "files")
    base = asyncio.run(evaluate_file(exp, exp.baseline_source))
    assert base["ok"] and base["category"] == "duplicate" and base["speedup"] == 1.0, base  # judged all the same
    hexagonal = ("def place(n):\n    import math\n    rows = math.ceil(math.sqrt(n))\n"
                 "    cols = math.ceil(n / rows)\n    pts = []\n    for k in range(n):\n"
                 "        r, c = divmod(k, cols)\n        x = (c + (0.5 if r % 2 else 0)) / (cols - 0.5)\n"
                 "        pts.append([min(x, 1.0), r / max(rows - 1, 1)])\n    return pts\n")
    if kind == "score":
        source = exp.baseline_source.split("# EVOLVE-BLOCK-START")[0] + "# EVOLVE-BLOCK-START\n" + hexagonal \
            + "# EVOLVE-BLOCK-END" + exp.baseline_source.split("# EVOLVE-BLOCK-END")[1]
    else:
        files = filesets.unpack(exp.baseline_source)
        files["solver/layout.py"] = "from lattice import smallest_distance\n\n\n" + hexagonal
        source = filesets.pack(files)
    verdict = asyncio.run(evaluate_file(exp, source))
    assert verdict["rule"] == "deterministic_score", verdict
    assert verdict["category"] == "accepted", verdict  # 0.388 apart instead of the grid's 0.333
