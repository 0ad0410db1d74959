"""Runs a ShinkaEvolve evaluate.py as Shinka does and prints one looplab protocol line (inside the sandbox).

    python -I shinka_runner.py EVALUATE PROGRAM NONCE TIMEOUT_S STANDINS

`python evaluate.py --program_path PROGRAM --results_dir DIR` runs in its own process, its folder (a private
copy) as working directory, and writes DIR/metrics.json and DIR/correct.json. combined_score is the
score; `correct: false` is invalid with its error; public metrics and text_feedback become the case's
metrics (what the model may see); private metrics go to the log only. STANDINS is appended to the
child's sys.path: `shinka.core.run_shinka_eval` is importable when shinka is not installed.
"""

import json
import math
import os
import signal
import subprocess
import sys
import tempfile

LOG_CHARS = 20000
# The child: `python evaluate.py ...` as Shinka runs it, with the stand-ins after everything installed.
BOOT = ("import os, runpy, sys\n"
        "sys.path.append(sys.argv.pop(1))\n"
        "sys.argv = sys.argv[1:]\n"
        "sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def emit(nonce, line):
    line = {"case": "score", **line, "nonce": nonce}  # "case" first: looplab keeps such lines out of the log
    sys.stdout.write("\n" + json.dumps(line, default=str) + "\n")
    sys.stdout.flush()


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run(evaluate, program, results, timeout_s, standins):
    """(exit code or None on timeout, the child's output)."""
    argv = [sys.executable, "-c", BOOT, standins, os.path.basename(evaluate),
            "--program_path", program, "--results_dir", results]
    proc = subprocess.Popen(argv, cwd=os.path.dirname(os.path.abspath(evaluate)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    return code, out.decode("utf-8", "replace")


def shown_metrics(metrics):
    """What the model may see: combined_score, the public metrics and text_feedback."""
    shown = {}
    public = metrics.get("public")
    for key, value in (public.items() if isinstance(public, dict) else []):
        shown[key] = value if isinstance(value, int | float | str | bool) or value is None else json.dumps(value)
    feedback = metrics.get("text_feedback")
    if isinstance(feedback, list):
        feedback = "\n".join(str(x) for x in feedback)
    if isinstance(feedback, str) and feedback.strip():
        shown["text_feedback"] = feedback
    score = metrics.get("combined_score")
    if isinstance(score, int | float) and not isinstance(score, bool):
        shown["combined_score"] = score
    return shown


def verdict(code, output, metrics, correct, timeout_s):
    line = {"ok": False}
    if code is None:
        return dict(line, failure="timeout", error=f"evaluate.py timed out after {timeout_s:g}s")
    if not isinstance(metrics, dict):
        tail = " | ".join(output.strip().splitlines()[-3:])[-400:]
        why = f"evaluate.py wrote no metrics.json (exit code {code})" + (f": {tail}" if tail else "")
        return dict(line, failure="crash", error=why)
    line["metrics"] = shown_metrics(metrics)
    score = metrics.get("combined_score")
    if not isinstance(correct, dict) or correct.get("correct") is not True:
        said = correct.get("error") if isinstance(correct, dict) else "evaluate.py wrote no correct.json"
        return dict(line, error=str(said or "correct: false")[:500])
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return dict(line, error=f"metrics.json: combined_score is {score!r}, not a finite number")
    return dict(line, ok=True, samples=[float(score)])


def main():
    evaluate, program, nonce, timeout_s, standins = sys.argv[1:6]
    timeout_s = float(timeout_s)
    results = tempfile.mkdtemp(prefix="results-")
    code, output = run(evaluate, program, results, timeout_s, standins)
    metrics = read_json(os.path.join(results, "metrics.json"))
    correct = read_json(os.path.join(results, "correct.json"))
    sys.stderr.write(output if len(output) <= LOG_CHARS else "[...]\n" + output[-LOG_CHARS:])
    if isinstance(metrics, dict) and metrics.get("private"):  # for the user's log, never for the model
        sys.stderr.write("\nprivate metrics (not shown to the model): "
                         + json.dumps(metrics["private"], default=str)[:2000] + "\n")
    sys.stderr.flush()
    emit(nonce, verdict(code, output, metrics, correct, timeout_s))


if __name__ == "__main__":
    main()
