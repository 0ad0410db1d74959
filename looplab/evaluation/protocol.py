"""Read the evaluator protocol: one JSON object per case line; everything else on stdout is ignored.

A candidate shares stdout with its harness, so lines are read suspiciously: only requested cases,
one line per case, and with a nonce (`{nonce}` in the evaluate command) only lines carrying it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from looplab.records import CaseResult, Outcome
from looplab.scrub import scrub_secrets

_KNOWN_KEYS = {"case", "ok", "samples_us", "samples", "score", "error", "nonce", "metrics", "failure"}
# A harness may class a failed case itself ("failure": "crash"); anything else failed is invalid.
_FAILURES = {"crash": Outcome.CRASH, "timeout": Outcome.TIMEOUT, "invalid": Outcome.INVALID}


@dataclass
class ReadResults:
    results: dict[str, CaseResult] = field(default_factory=dict)
    failure: Outcome | None = None
    reason: str = ""


def _samples(obj: dict[str, Any]) -> tuple[str | None, list[Any]]:
    for key in ("samples_us", "samples"):
        if key in obj:
            v = obj[key]
            return key, v if isinstance(v, list) else [v]
    if "score" in obj:
        return "score", [obj["score"]]
    return None, []


def read_results(stdout: str, cases: list[str], *, nonce: str | None = None,
                 timing: str = "samples_us") -> ReadResults:
    """Parse protocol lines for `cases` (all cases when empty). timing: the key whose samples are durations."""
    wanted = set(cases)
    out = ReadResults()
    for line in stdout.splitlines():
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if not isinstance(obj, dict) or "case" not in obj:
            continue
        case = str(obj["case"])
        if wanted and case not in wanted:
            continue
        if nonce is not None and obj.get("nonce") != nonce:
            return ReadResults(out.results, Outcome.INVALID,
                               f"forged result line for case {case}: it lacks the harness's nonce "
                               "(printed by the candidate, not the harness)")
        if case in out.results:
            return ReadResults(out.results, Outcome.INVALID, f"duplicate result line for case {case}")
        key, raw = _samples(obj)
        ok = obj.get("ok") is True
        try:
            samples = [float(x) for x in raw]
        except (TypeError, ValueError):
            return ReadResults(out.results, Outcome.CRASH, f"case {case}: samples are not numbers")
        metrics = {k: v for k, v in obj.items() if k not in _KNOWN_KEYS}
        if isinstance(obj.get("metrics"), dict):
            metrics.update(obj["metrics"])
        # Whatever the process printed may be stored and shown to the model: no secrets in it.
        metrics = {k: scrub_secrets(v) if isinstance(v, str) else v for k, v in metrics.items()}
        error = obj.get("error")
        out.results[case] = CaseResult(case=case, ok=ok, samples=samples if ok else [],
                                       error=None if error is None else scrub_secrets(str(error)[:500]),
                                       metrics=metrics, failure=None if ok else _FAILURES.get(str(obj.get("failure"))))
        if not ok:
            continue
        if not samples and "output" not in obj:  # an output to be judged needs no number
            return ReadResults(out.results, Outcome.CRASH, f"case {case}: result line has no samples")
        if not all(math.isfinite(s) for s in samples):
            return ReadResults(out.results, Outcome.INVALID, f"case {case}: non-finite sample (NaN/Inf)")
        if key == timing and min(samples) <= 0:
            return ReadResults(out.results, Outcome.INVALID, f"case {case}: non-positive timing sample")
    return out
