"""Commands beyond run/eval/status: calibrate, report (HTML), new — through the real CLI."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "matmul"


def looplab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "looplab.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_calibrate_reports_the_noise_floor(tmp_path):
    exp = tmp_path / "matmul"
    shutil.copytree(FIXTURE, exp)
    result = looplab("calibrate", str(exp), "--trials", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["trials"] == 2 and 0.0 <= data["false_accept_rate"] <= 1.0
    assert data["min_detectable_gain"] > 0


def test_new_then_eval_then_report(tmp_path):
    made = looplab("new", "prefix_sum_demo", "--lang", "c", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    exp = tmp_path / "prefix_sum_demo"
    verdict = json.loads(looplab("eval", str(exp), str(exp / "naive.c"), "--json").stdout)
    assert verdict["ok"] is True and verdict["category"] == "duplicate"
    report = looplab("report", str(exp))
    assert report.returncode == 0, report.stderr
    assert (exp / "report.html").stat().st_size > 10_000 and (exp / "SCORES.md").is_file()
    again = looplab("new", "prefix_sum_demo", "--lang", "c", "--dir", str(tmp_path))
    assert again.returncode == 2 and "fix:" in again.stderr
