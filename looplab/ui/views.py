"""What the report and the dashboard show, as plain data read once from the store (never written).

Holdout results are shown here: these pages are for the person running the search, not the model.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from typing import Any

from looplab.config import Experiment
from looplab.propose.memory import build_memory
from looplab.records import Outcome, Usage, times_better
from looplab.store import AttemptRow, Store

OUTCOME_COLORS: dict[str, str] = {
    "baseline": "#222222",
    "accepted": "#2ca02c",
    "specialist": "#17becf",
    "slower": "#8c8c8c",
    "invalid": "#ff7f0e",
    "overfit": "#9467bd",
    "compile_error": "#d62728",
    "timeout": "#8c564b",
    "crash": "#e377c2",
    "screen_rejected": "#bcbd22",
    "extract_error": "#6baed6",
    "duplicate": "#c7c7c7",
    "model_error": "#ff9896",
    "infra_error": "#c49c94",
    "interrupted": "#dbdb8d",
    "running": "#1f77b4",
}
REASON_CHARS = 200  # one line per attempt in tables
SPECIALISTS_SHOWN = 8  # more bars than this make the per-case chart unreadable


@dataclass
class View:
    """One experiment as its pages show it, read from the store in one go."""

    experiment: Experiment
    rows: list[AttemptRow] = field(default_factory=list)  # baseline first, in-flight attempts included
    baseline: AttemptRow | None = None
    incumbent: AttemptRow | None = None
    winners: list[AttemptRow] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    judge_usage: Usage = field(default_factory=Usage)  # a judge model's calls (judged objectives), also in usage
    memory: dict = field(default_factory=dict)
    read_at: float = field(default_factory=time.time)
    has_store: bool = False

    @property
    def direction(self) -> str:
        return self.experiment.config.objective.direction

    @property
    def unit(self) -> str:
        return self.experiment.config.objective.unit

    @property
    def attempts(self) -> list[AttemptRow]:
        """Every attempt but the baseline, id order."""
        return [r for r in self.rows if r.outcome is not Outcome.BASELINE]

    @property
    def in_flight(self) -> list[AttemptRow]:
        return [r for r in self.rows if r.outcome is None]


def build_view(store: Store | None, experiment: Experiment) -> View:
    """Everything the pages need; store None means the experiment has not run yet."""
    if store is None:
        return View(experiment=experiment, memory={"worked": [], "failing": [], "unexplored": []})
    return View(
        experiment=experiment,
        rows=store.attempts(),
        baseline=store.baseline(),
        incumbent=store.incumbent(),
        winners=store.winners(),
        usage=store.usage_total(),
        judge_usage=store.usage_total("judge"),
        memory=build_memory(store, experiment),
        has_store=True,
    )


def one_line(text: str | None, limit: int = REASON_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outcome_name(row: AttemptRow) -> str:
    return row.outcome.value if row.outcome is not None else "running"


def gain(view: View, metric: float | None) -> float | None:
    """How many times better than the baseline a metric is (>1 is better, whatever the direction)."""
    return times_better(view.baseline.metric if view.baseline else None, metric, view.direction)


def parent_of(view: View, row: AttemptRow) -> int:
    """The attempt this one was built on: its recorded parent, else the incumbent when it started."""
    if row.parent_id is not None:
        return row.parent_id
    before = [r for r in view.rows if r.outcome is Outcome.ACCEPTED and r.id != row.id
              and r.ended_at is not None and r.ended_at <= row.started_at]
    return max(before, key=lambda r: (r.ended_at or 0, r.id)).id if before else 0




def summary(view: View) -> dict[str, Any]:
    """The headline numbers: attempts, outcomes, best and its gain, tokens and cost."""
    counts: dict[str, int] = {}
    for r in view.attempts:
        counts[outcome_name(r)] = counts.get(outcome_name(r), 0) + 1
    best = view.incumbent
    models = sorted({r.model for r in view.attempts if r.model})
    return {
        "name": view.experiment.name,
        "root": str(view.experiment.root),
        "has_store": view.has_store,
        "attempts": sum(1 for r in view.attempts if r.outcome is not None),
        "in_flight": len(view.in_flight),
        "outcomes": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "unit": view.unit,
        "direction": view.direction,
        "baseline_metric": view.baseline.metric if view.baseline else None,
        "best": {
            "attempt": best.id if best else None,
            "metric": best.metric if best else None,
            "gain": gain(view, best.metric) if best else None,
            "commit": best.commit if best else None,
            "strategy": best.strategy if best else "",
        },
        "usage": view.usage.to_dict(),
        "judge_usage": view.judge_usage.to_dict(),
        "models": models,
        "search_cases": view.experiment.search_cases,
        "holdout_cases": view.experiment.holdout_cases,
        "winners": len(view.winners),
    }


def attempt_table(view: View) -> list[dict[str, Any]]:
    """One row per attempt, newest first, with a one-line reason."""
    out = []
    for r in reversed(view.rows):
        name = outcome_name(r)
        out.append({
            "id": r.id,
            "outcome": name,
            "color": OUTCOME_COLORS.get(name, "#999999"),
            "reason": one_line(r.reason),
            "strategy": one_line(r.strategy, 120),
            "metric": r.metric,
            "speedup": r.speedup,
            "ci": (r.ci_low, r.ci_high) if r.ci_low is not None and r.ci_high is not None else None,
            "gain": gain(view, r.metric),
            "tokens": r.usage.total_tokens,
            "cost": r.usage.cost_usd,
            "model": r.model,
            "seconds": (r.ended_at or time.time()) - r.started_at,
            "commit": r.commit,
            "turns": [t.get("outcome", "") for t in r.details.get("turns") or [] if isinstance(t, dict)],
        })
    return out


def best_over_time(view: View) -> dict[str, Any]:
    """The incumbent's metric after each attempt (a step line) and every attempt as a point.

    Attempts without a metric (failures) sit on the step line, so each attempt has a place.
    """
    level = view.baseline.metric if view.baseline else None
    steps_x: list[int] = [0] if level is not None else []
    steps_y: list[float | None] = [level] if level is not None else []
    points: list[dict[str, Any]] = []
    for r in view.attempts:
        if r.outcome is Outcome.ACCEPTED and r.metric is not None:
            level = r.metric
        if r.outcome is not None:
            steps_x.append(r.id)
            steps_y.append(level)
        y, measured = (r.metric, True) if r.metric is not None else (level, False)
        points.append({"id": r.id, "y": y, "measured": measured, "outcome": outcome_name(r),
                       "label": one_line(r.strategy or r.reason, 90)})
    return {"x": steps_x, "y": steps_y, "points": points, "unit": view.unit, "direction": view.direction}


def case_speedups(view: View) -> list[dict[str, Any]]:
    """Per-case gain over the baseline of the incumbent and the latest specialists."""
    if view.baseline is None:
        return []
    shown = [r for r in view.winners if r.outcome is Outcome.SPECIALIST][-SPECIALISTS_SHOWN:]
    if view.incumbent is not None and view.incumbent.outcome is Outcome.ACCEPTED:
        shown = [view.incumbent, *shown]
    holdout = set(view.experiment.holdout_cases)
    out = []
    for r in shown:
        per_case = {}
        for name, case in r.all_cases().items():
            base = view.baseline.cases.get(name)
            if case.ok and base is not None and base.ok:
                per_case[name] = times_better(base.median, case.median, view.direction)
        role = "incumbent" if r.outcome is Outcome.ACCEPTED else "specialist"
        out.append({
            "label": f"#{r.id} {role}",
            "id": r.id,
            "search": {c: v for c, v in per_case.items() if c not in holdout and v is not None},
            "holdout": {c: v for c, v in per_case.items() if c in holdout and v is not None},
            "holdout_aggregate": r.holdout.speedup if r.holdout else None,
        })
    return out


def cumulative_usage(view: View) -> dict[str, Any]:
    """Tokens and cost summed over attempts in id order; cost stays None once a price is unknown."""
    x, prompt, completion, cost = [], [], [], []
    p = c = 0
    dollars: float | None = 0.0
    for r in view.attempts:
        p += r.usage.prompt_tokens
        c += r.usage.completion_tokens
        if dollars is not None:
            dollars = None if r.usage.cost_usd is None else dollars + r.usage.cost_usd
        x.append(r.id)
        prompt.append(p)
        completion.append(c)
        cost.append(dollars)
    return {"x": x, "prompt": prompt, "completion": completion, "cost": cost}


def source_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=old_name, tofile=new_name, n=3))


def winner_cards(view: View) -> list[dict[str, Any]]:
    """Each winner, newest first: its interval, gain, parent and diff against the baseline."""
    base_src = view.baseline.source if view.baseline and view.baseline.source else ""
    base_name = f"baseline/{view.experiment.config.target.baseline}"
    cards = []
    for r in reversed(view.winners):
        diff = source_diff(base_src, r.source or "", base_name, f"attempt-{r.id}.{view.experiment.ext}")
        cards.append({
            "id": r.id,
            "outcome": outcome_name(r),
            "color": OUTCOME_COLORS.get(outcome_name(r), "#999999"),
            "strategy": r.strategy,
            "speedup": r.speedup,
            "ci": (r.ci_low, r.ci_high) if r.ci_low is not None and r.ci_high is not None else None,
            "gain": gain(view, r.metric),
            "metric": r.metric,
            "commit": r.commit,
            "parent": parent_of(view, r),
            "best_cases": list(r.decision.get("best_cases", [])),
            "holdout_ok": r.holdout.ok if r.holdout else None,
            "holdout_speedup": r.holdout.speedup if r.holdout else None,
            "diff": diff or "(same source as the baseline)",
            "is_incumbent": view.incumbent is not None and r.id == view.incumbent.id,
        })
    return cards


def lineage(view: View) -> list[dict[str, Any]]:
    """The baseline and every winner with the attempt it was built on (parent -1: the root)."""
    nodes = []
    if view.baseline is not None:
        nodes.append({"id": 0, "parent": -1, "gain": 1.0, "outcome": "baseline", "label": "baseline"})
    for r in view.winners:
        nodes.append({"id": r.id, "parent": parent_of(view, r), "gain": gain(view, r.metric),
                      "outcome": outcome_name(r), "label": one_line(r.strategy, 60)})
    return nodes
