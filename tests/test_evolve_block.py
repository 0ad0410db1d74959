"""An OpenEvolve folder (initial_program.py + evaluator.py, no experiment.toml): edits outside the
EVOLVE-BLOCK markers are rejected before any evaluation, by `eval` as by `run`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "experiments" / "openevolve_example"


def test_edit_outside_markers_is_screen_rejected(tmp_path):
    exp = tmp_path / "oe"
    shutil.copytree(EXAMPLE, exp, ignore=shutil.ignore_patterns(".looplab", "runs", "SCORES.*", "MEMORY.*"))
    source = (exp / "initial_program.py").read_text()
    assert "capacity: float = 1.0" in source
    cheat = tmp_path / "cheat.py"
    cheat.write_text(source.replace("capacity: float = 1.0", "capacity: float = 2.0"))
    result = subprocess.run([sys.executable, "-m", "looplab.cli", "eval", str(exp), str(cheat), "--json"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["category"] == "screen_rejected" and "EVOLVE-BLOCK" in verdict["reason"]
    assert verdict["ok"] is False
