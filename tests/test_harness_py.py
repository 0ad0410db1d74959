"""looplab.harness.py on a toy target, run directly: spot checks, reproducible seeds, clean stdout,
the CLI's errors and the reply parser."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from looplab.harness.py.channel import CaseFailed, decode
from looplab.harness.py.supervisor import short

BENCH = '''
from looplab.harness.py import main

CASES = {"ints": lambda rng: [(rng.randrange(10**6),) for _ in range(200)]}


def check(args, got):
    return None if type(got) is int and got == 2 * args[0] else f"expected {2 * args[0]}"


if __name__ == "__main__":
    raise SystemExit(main("double", CASES, check, checks_per_call=CHECKS))
'''


def toy(tmp_path: Path, checks: int | None = None) -> Path:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "bench.py").write_text(BENCH.replace("CHECKS", repr(checks)))
    (tmp_path / "experiment.toml").write_text('[screen]\nallowed_imports = ["math"]\n')
    return tmp_path


def run(exp: Path, source: str, *args: str) -> subprocess.CompletedProcess:
    cand = exp / "candidate.py"
    cand.write_text(source)
    return subprocess.run([sys.executable, "-I", str(exp / "harness" / "bench.py"), "--candidate", str(cand),
                           "--max-reps", "3", *args], capture_output=True, text=True, timeout=60)


def lines(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(t) for t in proc.stdout.splitlines()]  # nothing but protocol lines


def test_an_honest_candidate_passes_and_its_prints_go_nowhere(tmp_path: Path) -> None:
    source = "import sys\n\ndef double(x):\n    print('{\"case\": \"ints\", \"ok\": true}')\n" \
             "    print('noise', file=sys.stderr)\n    return x + x\n"
    proc = run(toy(tmp_path), source, "--nonce", "abc", "ints", "nope")
    ok, unknown = lines(proc)
    assert ok["ok"] is True and ok["nonce"] == "abc" and len(ok["samples_us"]) == 3 and ok["inputs"] == 200
    assert unknown == {"case": "nope", "nonce": "abc", "ok": False, "error": "unknown case"}
    assert "noise" not in proc.stderr


def test_spot_checks_are_chosen_after_the_call(tmp_path: Path) -> None:
    """With checks_per_call, call 1 is checked in full and later calls on results drawn afterwards."""
    wrong_later = "_n = [0]\n\ndef double(x):\n    _n[0] += 1\n    return 2 * x if _n[0] <= 200 else 0\n"
    (line,) = lines(run(toy(tmp_path, checks=5), wrong_later, "ints"))
    assert line["ok"] is False and "returned 0, expected" in line["error"] and "on call 2" in line["error"]


def test_a_seed_reproduces_the_inputs(tmp_path: Path) -> None:
    exp = toy(tmp_path)
    wrong = "def double(x):\n    return x\n"
    first, again, other = (lines(run(exp, wrong, "--seed", s, "ints"))[0]["error"] for s in ("7", "7", "8"))
    assert first == again != other


def test_an_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    proc = run(toy(tmp_path), "def double(x):\n    return 2 * x\n", "--sed", "1", "ints")
    assert proc.returncode != 0 and "unknown option --sed" in proc.stderr and proc.stdout == ""


def test_only_allowed_modules_can_be_imported(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (line,) = lines(run(toy(tmp_path / "a"), "import json\n\ndef double(x):\n    return 2 * x\n", "ints"))
    assert line["failure"] == "crash" and "candidate failed to load: ModuleNotFoundError" in line["error"]
    (line,) = lines(run(toy(tmp_path / "b"), "import math\n\ndef double(x):\n    return math.prod([2, x])\n",
                        "ints"))
    assert line["ok"] is True, line


@pytest.mark.parametrize("payload, words", [
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"results": [' + b"9" * 5000 + b"]}", "not valid JSON"),  # beyond int's digit limit
])
def test_replies_are_parsed_defensively(payload: bytes, words: str) -> None:
    with pytest.raises(CaseFailed, match=words):
        decode(payload, "on call 1")


def test_values_are_shown_short() -> None:
    assert short("x" * 100) == repr("x" * 40 + "...")
    assert short(list(range(20))) == "[0, 1, 2, 3, 4, 5, 6, 7, ...] of length 20"
    assert len(short({i: i for i in range(100)})) == 63
