"""The plain records that flow through one attempt: reply, candidate, evaluation, decision.

Every module speaks in these types; none of them knows how they are stored.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Outcome(StrEnum):
    """What one attempt came to. Stored as its string value."""

    BASELINE = "baseline"  # attempt 0: the seed the search starts from
    ACCEPTED = "accepted"  # new incumbent
    SPECIALIST = "specialist"  # not better overall, but best on at least one case; archived
    SLOWER = "slower"  # built, valid, not better than the noise allows
    INVALID = "invalid"  # wrong results on a search case
    OVERFIT = "overfit"  # right on search cases, wrong on a holdout case
    COMPILE_ERROR = "compile_error"
    TIMEOUT = "timeout"
    CRASH = "crash"
    SCREEN_REJECTED = "screen_rejected"
    EXTRACT_ERROR = "extract_error"
    DUPLICATE = "duplicate"
    MODEL_ERROR = "model_error"
    INFRA_ERROR = "infra_error"  # the machinery failed, not the candidate
    INTERRUPTED = "interrupted"

    @property
    def is_winner(self) -> bool:
        return self in (Outcome.ACCEPTED, Outcome.SPECIALIST, Outcome.BASELINE)

    @property
    def is_failure(self) -> bool:
        """The attempt failed in a way that says something about its candidate (FAILURES)."""
        return self in FAILURES

    @property
    def was_tried(self) -> bool:
        """The candidate got to run far enough to count as an idea explored (not NOT_TRIED)."""
        return self not in NOT_TRIED


# The failures, grouped as the closing lines describe them: the candidate built and ran, and the evaluator
# judged it; it never ran; or it repeated an earlier program.
RAN_AND_FAILED = (Outcome.SLOWER, Outcome.INVALID, Outcome.OVERFIT, Outcome.CRASH, Outcome.TIMEOUT)
NEVER_RAN = (Outcome.EXTRACT_ERROR, Outcome.SCREEN_REJECTED, Outcome.COMPILE_ERROR)
# Outcomes that say something about the candidate; model/infra errors and interruptions do not.
FAILURES = RAN_AND_FAILED + NEVER_RAN + (Outcome.DUPLICATE,)
# Not evidence that an idea was explored: the candidate never got to run.
NOT_TRIED = (Outcome.BASELINE, Outcome.MODEL_ERROR, Outcome.INFRA_ERROR, Outcome.INTERRUPTED)


def times_better(base: float | None, value: float | None, direction: str) -> float | None:
    """How many times better value is than base (>1: better) for an objective minimised or maximised.

    The one "x over the baseline" of looplab (SCORES, the dashboard, the prompt, the live panel).
    None unless both are positive numbers: a ratio of a zero or negative value means nothing."""
    if base is None or value is None or base <= 0 or value <= 0:
        return None
    return base / value if direction == "minimize" else value / base


@dataclass
class Usage:
    """Tokens and cost of one or more model calls. cost_usd is None when a price is unknown."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            cost,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
        }


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass
class Reply:
    """One model completion with its accounting."""

    text: str
    usage: Usage
    model: str  # provider:model as called, e.g. "openai:gpt-4o-mini"
    latency_s: float = 0.0
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        # JSON may carry a lone surrogate ("\ud800"): it cannot be stored or written as UTF-8.
        self.text = _LONE_SURROGATE.sub("\ufffd", self.text)


@dataclass
class Candidate:
    """The implementation one attempt proposes: full source of the target file."""

    source: str
    strategy: str = ""  # the model's one-line "Strategy:" note
    tags: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    """One case of one evaluation, as the evaluator reported it (plus looplab's reading)."""

    case: str
    ok: bool
    samples: list[float] = field(default_factory=list)  # raw timings (unit per experiment) or one score
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # anything else the harness printed (gflops, ...)
    failure: Outcome | None = None  # a failed case the harness classed itself (crash, timeout); else invalid

    @property
    def median(self) -> float | None:
        if not self.samples:
            return None
        s = sorted(self.samples)
        n = len(s)
        return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> CaseResult:
        return CaseResult(
            case=d["case"],
            ok=bool(d.get("ok")),
            samples=[float(x) for x in d.get("samples", [])],
            error=d.get("error"),
            metrics=dict(d.get("metrics", {})),
            failure=Outcome(d["failure"]) if d.get("failure") else None,
        )


@dataclass
class Evaluation:
    """build → validate → measure of one candidate.

    ok is True when it built and every requested case validated. When not ok, `failure`
    names the outcome (compile_error, invalid, timeout, crash, ...) and `reason` says why.
    """

    ok: bool
    cases: dict[str, CaseResult] = field(default_factory=dict)
    failure: Outcome | None = None
    reason: str = ""
    log: str = ""  # build/run output worth keeping (scrubbed, capped)
    seed: int | None = None
    wall_s: float = 0.0


@dataclass
class CaseComparison:
    """Paired comparison of candidate vs incumbent on one case. speedup > 1 means candidate better."""

    case: str
    speedup: float
    ci_low: float
    ci_high: float
    candidate_median: float
    incumbent_median: float
    rounds: int


@dataclass
class Decision:
    outcome: Outcome
    reason: str
    speedup: float | None = None  # aggregate over search cases, vs incumbent
    ci_low: float | None = None
    ci_high: float | None = None
    cases: dict[str, CaseComparison] = field(default_factory=dict)
    best_cases: list[str] = field(default_factory=list)  # cases where the candidate is now best known
    holdout_speedup: float | None = None
    rounds: int = 0
    revalidated: bool = False  # over 10x: validated a second time with fresh inputs (flagged in SCORES)
    rule: str = ""  # the acceptance rule that decided (timing, deterministic_score, noisy_score)
    # Score rules: aggregate values and their difference in the metric's unit (> 0 is better).
    candidate_value: float | None = None
    incumbent_value: float | None = None
    gain: float | None = None
    gain_low: float | None = None
    gain_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        return d
