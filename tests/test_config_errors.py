"""Bad input a user can cause: one line naming file, field and fix; exit code 2; no traceback."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


def looplab(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "looplab.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


@pytest.fixture
def exp(tmp_path):
    dest = tmp_path / "matmul"
    shutil.copytree(FIXTURE, dest)
    return dest


def edit_toml(exp, old, new):
    path = exp / "experiment.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def assert_user_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "fix:" in lines[0]


@pytest.mark.parametrize("old, new, needles", [
    ("min_gain = 0.02", "min_gain = 0.02\nmin_gian = 3", ["experiment.toml", "objective.min_gian"]),
    ("min_gain = 0.02", 'min_gain = "lots"', ["objective.min_gain"]),
    ('baseline = "naive.c"', 'baseline = "missing.c"', ["target.baseline", "missing.c"]),
    ('language = "c"', 'language = "fortran"', ["target.language"]),
    ('[target]', '[target\n', ["not valid TOML"]),
    ('holdout = ["n61"]', 'holdout = ["n96"]', ["cases.holdout"]),
    ('search = ["n96", "n128", "n160"]', "search = []", ["cases.search", "no search cases"]),
    ("[screen]", '[reference]\nfile = "nope.json"\n[screen]', ["reference.file", "nope.json"]),
    ("[screen]", '[reference]\nfile = "naive.c"\n[screen]', ["reference.file", "not valid JSON"]),
    ("[screen]", '[reference]\nfile = "experiment.toml"\nkey = "gflops"\n[screen]', ["reference.file"]),
])
def test_malformed_experiment_toml(exp, old, new, needles):
    edit_toml(exp, old, new)
    assert_user_error(looplab("status", str(exp)), *needles)


def test_missing_folder_and_toml(tmp_path):
    assert_user_error(looplab("status", str(tmp_path / "nope")), "no such experiment folder")
    assert_user_error(looplab("status", str(tmp_path)), "experiment.toml")


@pytest.mark.parametrize("spec, needles", [
    ("bogus:model", ["bogus"]),
    ("openai:gpt-4o-mini", ["OPENAI_API_KEY"]),
    ("anthropic:claude-3-5-haiku-latest", ["ANTHROPIC_API_KEY"]),
    ("replay:/nonexistent/replies.jsonl", ["replies.jsonl"]),
])
def test_bad_model_spec_or_missing_key(exp, spec, needles):
    env = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "OPENAI_BASE_URL": "", "ANTHROPIC_BASE_URL": ""}
    assert_user_error(looplab("run", str(exp), "--model", spec, "--loop", "1", env=env), *needles)


@pytest.mark.parametrize("price", ["cheap", "0.15", "0.15/-1", "1/2/3/4", "nan/1"])
def test_bad_price(exp, price):
    assert_user_error(looplab("run", str(exp), "--model", "replay:/dev/null", "--price", price, "--loop", "1"),
                      "--price", "USD per million tokens")


def test_missing_candidate_file_for_eval(exp):
    assert_user_error(looplab("eval", str(exp), str(exp / "nope.c")), "nope.c")


@pytest.mark.parametrize("flag, value", [("--loop", "-1"), ("--loop", "many"), ("--budget-usd", "-1"),
                                         ("--budget-usd", "0"), ("--model-timeout", "-1"), ("--model-timeout", "nan"),
                                         ("--workers", "0")])
def test_bad_run_options_are_one_line(exp, flag, value):
    assert_user_error(looplab("run", str(exp), "--model", "command:true", flag, value), flag, value)


def test_a_usage_mistake_is_one_line_not_the_usage(exp):
    assert_user_error(looplab("run"), "experiment")
    assert_user_error(looplab("frobnicate", str(exp)), "frobnicate")
