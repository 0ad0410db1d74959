"""Runs an OpenEvolve evaluator as OpenEvolve does and prints one looplab protocol line (inside the sandbox).

    python -I openevolve_runner.py EVALUATOR PROGRAM NONCE TIMEOUT_S CASCADE_JSON STANDINS

The working directory is a private copy of the evaluator's folder. Without a cascade, evaluate(PROGRAM)
decides; with one, evaluate_stage1 runs, and a stage's combined_score (else the mean of its numeric
metrics) at or above its threshold lets the next stage run, as in OpenEvolve. Each call has TIMEOUT_S.
Artifacts become text metrics of the case (scrubbed and capped by looplab). STANDINS is appended to
sys.path: `openevolve.evaluation_result` is importable when openevolve is not installed.
"""

import faulthandler
import importlib.util
import json
import math
import os
import signal
import sys
import threading
import traceback

WATCHDOG_S = 1.0  # past a call's timeout, for a call whose SIGALRM handler cannot run
ARTIFACT_CHARS = 2000  # one artifact, head and tail kept
ARTIFACTS_CHARS = 8000  # all artifacts of one evaluation
_lock = threading.Lock()


def emit(nonce, line, *, exit_now=False):
    """Print the one protocol line (the first caller wins: a timed-out stage may still be running)."""
    if not _lock.acquire(blocking=False):
        return
    line = {"case": "score", **line, "nonce": nonce}  # "case" first: looplab keeps such lines out of the log
    sys.stdout.write("\n" + json.dumps(line, default=str) + "\n")
    sys.stdout.flush()
    if exit_now:
        os._exit(0)


def call(fn, program, what, timeout_s, nonce):
    """fn(program) with a deadline; past it the evaluation ends as a timeout. A SIGALRM timer, whose handler says
    so on the protocol line. A call stuck in C code never lets that handler run: faulthandler's watchdog, which
    needs no interpreter, ends the process WATCHDOG_S later, and looplab reads its "Timeout (...)!" as a timeout
    (it is not left to the sandbox's own deadline, tens of seconds on). An evaluator that takes SIGALRM for
    itself meets the watchdog too."""

    def expired(signum, frame):
        emit(nonce, {"ok": False, "failure": "timeout",
                     "error": f"{what} timed out after {timeout_s:g}s (evaluator.timeout)"}, exit_now=True)

    before = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        faulthandler.dump_traceback_later(timeout_s + WATCHDOG_S, exit=True)
    except (RuntimeError, OSError):  # no thread to be had (a process limit): the sandbox's deadline still holds
        pass
    try:
        return fn(program)
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def unpack(result, what):
    """(metrics, artifacts) of a dict or an EvaluationResult (any object with .metrics and .artifacts)."""
    metrics = getattr(result, "metrics", result)
    artifacts = getattr(result, "artifacts", None) or {}
    if not isinstance(metrics, dict):
        raise TypeError(f"{what} returned {type(result).__name__}, not a dict of metrics or an EvaluationResult")
    return dict(metrics), dict(artifacts) if isinstance(artifacts, dict) else {"artifacts": str(artifacts)}


def numeric(metrics):
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "error"}


def score_of(metrics):
    """combined_score when there is one, else the mean of the numeric metrics (OpenEvolve's rule)."""
    nums = numeric(metrics)
    if "combined_score" in nums:
        return nums["combined_score"]
    return sum(nums.values()) / len(nums) if nums else None


def cap(text, limit):
    return text if len(text) <= limit else text[:limit // 2] + "\n[...]\n" + text[-limit // 2:]


def as_text(value):
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes, not shown>"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def cascade(mod, program, thresholds, timeout_s, nonce):
    """Stage 1 gates stage 2 gates stage 3; returns (metrics, artifacts, why it stopped early or "")."""
    metrics, artifacts = unpack(call(mod.evaluate_stage1, program, "stage 1", timeout_s, nonce), "evaluate_stage1")
    for stage in (2, 3):
        if metrics.get("error"):
            return metrics, artifacts, ""
        fn = getattr(mod, f"evaluate_stage{stage}", None)
        if fn is None or len(thresholds) < stage - 1:
            break
        threshold, score = thresholds[stage - 2], score_of(metrics)
        if score is None or score < threshold:
            shown = "no numeric metric" if score is None else f"combined_score {score:.6g}"
            return metrics, artifacts, (f"stopped after stage {stage - 1}: {shown} is below the stage-{stage} "
                                        f"threshold {threshold:g}")
        more, extra = unpack(call(fn, program, f"stage {stage}", timeout_s, nonce), f"evaluate_stage{stage}")
        metrics.update(more)
        artifacts.update(extra)
    return metrics, artifacts, ""


def program_frames(error, program):
    """The traceback's frames in the candidate's own file (the evaluator's lines are not shown)."""
    mine = os.path.realpath(program)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if os.path.realpath(f.filename) == mine]
    if not frames:
        return ""
    return "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(error)).strip()


def main():
    evaluator, program, nonce, timeout_s, thresholds, standins = sys.argv[1:7]
    timeout_s, thresholds = float(timeout_s), json.loads(thresholds)
    sys.argv[:] = [evaluator]  # the evaluator sees neither the nonce nor looplab's arguments
    sys.path.insert(0, os.path.dirname(os.path.abspath(evaluator)))
    sys.path.append(standins)  # an installed openevolve comes first
    line = {"ok": False}
    try:
        spec = importlib.util.spec_from_file_location("evaluation_module", evaluator)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        stopped = ""
        if thresholds and hasattr(mod, "evaluate_stage1"):
            metrics, artifacts, stopped = cascade(mod, program, thresholds, timeout_s, nonce)
        else:
            metrics, artifacts = unpack(call(mod.evaluate, program, "evaluate()", timeout_s, nonce), "evaluate()")
        score = score_of(metrics)
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool) or v is None}
        room = ARTIFACTS_CHARS
        for key, value in artifacts.items():
            text = cap(as_text(value), min(ARTIFACT_CHARS, room))
            if key not in shown and room > 0:
                shown[key], room = text, room - len(text)
        if stopped:
            shown["cascade"] = stopped
        line["metrics"] = shown
        if metrics.get("error"):
            line["error"] = str(shown.pop("error", metrics["error"]))[:500]  # said once, as the reason
        elif score is None:
            line["error"] = "the evaluator returned no numeric metric"
        elif not math.isfinite(score):
            line["error"] = f"the score is {score}"
        else:
            line["ok"], line["samples"] = True, [score]
    except BaseException as e:  # noqa: B036 - the evaluator's own exit or error is the candidate's verdict
        line["error"] = f"{type(e).__name__}: {e}"[:500]
        frames = program_frames(e, program)
        if frames:
            line["metrics"] = {"traceback": cap(frames, ARTIFACT_CHARS)}
    emit(nonce, line)
    sys.stdout.flush()
    if globals().get("__looplab_warm__"):
        raise SystemExit(0)  # a warm host's child: its host reports the exit before the kernel has freed the memory
    os._exit(0)  # threads a timed-out or careless evaluator left running do not hold the result back


if __name__ == "__main__":
    main()
