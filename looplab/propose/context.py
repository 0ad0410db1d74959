"""What the next attempt sees: the search view for parent selection and the prompt's context."""

from __future__ import annotations

import json

from looplab.acceptance.stats import case_value
from looplab.config import Direction, Experiment, ObjectiveKind
from looplab.propose import memory
from looplab.propose.parents import Plan, SearchView
from looplab.propose.prompt import Failure, Parent, PromptContext
from looplab.records import FAILURES, CaseResult, times_better
from looplab.screen.novelty import VALID as NOVELTY_VALID
from looplab.screen.novelty import NoveltyIndex
from looplab.store import AttemptRow, Store


def search_view(store: Store, experiment: Experiment, incumbent: AttemptRow, mem: dict) -> SearchView:
    """What parent selection sees, around the incumbent snapshot the whole attempt works from."""
    newest = store.attempts(limit=1, newest_first=True)
    since = max(0, newest[0].id - incumbent.id) if newest else 0  # attempts begun since the last acceptance
    return SearchView(incumbent, specialists(store, experiment, incumbent),
                      [u["idea"] for u in mem["unexplored"]], since)


def prompt_context(store: Store, experiment: Experiment, incumbent: AttemptRow, plan: Plan,
                   mem: dict) -> PromptContext:
    cfg = experiment.config.prompt
    recent = store.attempts(outcomes=list(FAILURES), limit=cfg.failures_shown, newest_first=True)
    memory_md = memory.render_memory_md(mem, cfg.memory_chars)
    return PromptContext(
        incumbent=incumbent.source or "",
        incumbent_speedup=speedup_label(store, experiment, incumbent),
        memory=memory_md,
        failures=[Failure(r.id, r.outcome.value if r.outcome else "", experiment.hide_holdout(r.reason)[:300],
                          feedback(experiment, r)) for r in recent],
        parents=[Parent(p.id, p.source or "", p.strategy) for p in plan.parents],
        direction=plan.direction,
        incumbent_metrics=measured(experiment, incumbent),
    )


FEEDBACK_CHARS = 300
_NOT_SHOWN = {"inputs_seed", "seed", "nonce", "failure"}  # the harness's own bookkeeping


def _number(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def _case_metrics(case: CaseResult, wanted: list[str], limit: int = 4) -> list[str]:
    names = wanted or [k for k in case.metrics if k not in _NOT_SHOWN]
    out = []
    for k in names:
        v = case.metrics.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out.append(f"{k} {_number(v)}")
    return out[:limit]


def measured(experiment: Experiment, row: AttemptRow) -> str:
    """What the evaluator measured for the current best on the search cases (never the holdout ones)."""
    obj = experiment.config.objective
    if obj.kind is ObjectiveKind.JUDGED:
        return _judged_outputs(experiment, row)
    unit = f" {obj.unit}" if obj.unit and obj.unit != "score" else ""
    parts = []
    for name in [c for c in experiment.search_cases if c in row.cases][:8]:
        case = row.cases[name]
        value = case_value(case, obj.metric)
        head = f"{name} {_number(value)}{unit}" if value is not None else name
        extra = [m for m in _case_metrics(case, obj.metrics) if not m.startswith(f"{obj.metric} ")]
        parts.append(head + (f" ({', '.join(extra)})" if extra else ""))
    return experiment.hide_holdout("; ".join(parts))[:800]


def _judged_outputs(experiment: Experiment, row: AttemptRow) -> str:
    """A judged objective has no values: what the current best produced for the search cases' inputs."""
    parts = []
    for name in [c for c in experiment.search_cases if c in row.cases][:4]:
        m = row.cases[name].metrics
        inp, out = (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) if v is not None else ""
                    for v in (m.get("input"), m.get("output")))
        inp, out = " ".join(inp.split())[:160], " ".join(out.split())[:160]
        parts.append(f"{name}: {inp!r} -> {out}" if inp else f"{name}: {out}")
    return experiment.hide_holdout("; ".join(parts))[:800]


def feedback(experiment: Experiment, row: AttemptRow) -> str:
    """The evaluator's words on one attempt besides its verdict: text feedback and named diagnostics."""
    said: list[str] = []
    judged = experiment.config.objective.kind is ObjectiveKind.JUDGED  # its inputs and outputs are not feedback
    for case in row.cases.values():
        for k, v in case.metrics.items():
            if isinstance(v, str) and v.strip() and k not in _NOT_SHOWN and not (judged and k in ("input", "output")):
                said.append(f"{k}: {' '.join(v.split())}")
        numbers = _case_metrics(case, experiment.config.objective.metrics, limit=3)
        if numbers and not case.error:
            said.append(f"{case.case}: {', '.join(numbers)}")
    text = experiment.hide_holdout("; ".join(dict.fromkeys(said)))
    return text if len(text) <= FEEDBACK_CHARS else text[:FEEDBACK_CHARS - 1] + "…"


def best_case_medians(store: Store, experiment: Experiment) -> dict[str, float]:
    """Best median per case among the baseline and all winners (the per-case Pareto front)."""
    rows = [r for r in [store.baseline(), *store.winners()] if r is not None]
    return {name: value for name, (value, _) in _case_leaders(rows, experiment).items()}


def specialists(store: Store, experiment: Experiment, incumbent: AttemptRow) -> list[AttemptRow]:
    """Winners (not the incumbent) holding the best median on at least one search case."""
    winners = store.winners()
    baseline = store.baseline()
    rows = [baseline, *winners] if baseline is not None else winners
    leaders = {row_id for name, (_, row_id) in _case_leaders(rows, experiment).items()
               if name not in experiment.holdout_cases}
    return [w for w in winners if w.id in leaders and w.id != incumbent.id]


def _case_leaders(rows: list[AttemptRow], experiment: Experiment) -> dict[str, tuple[float, int]]:
    minimize = experiment.config.objective.direction is Direction.MINIMIZE
    best: dict[str, tuple[float, int]] = {}
    for row in rows:
        for name, case in row.cases.items():
            if case.ok and case.median is not None:
                held = best.get(name)
                if held is None or (case.median < held[0] if minimize else case.median > held[0]):
                    best[name] = (case.median, row.id)
    return best


def novelty_index(store: Store, experiment: Experiment) -> NoveltyIndex:
    """Valid evaluated attempts, read from the store at the first lookup (not at start-up)."""
    def load() -> list[tuple[int, str]]:
        return [(r.id, r.source) for r in store.attempts(outcomes=list(NOVELTY_VALID)) if r.source]

    return NoveltyIndex(experiment.language, experiment.config.search.near_duplicate, load=load)


def speedup_label(store: Store, experiment: Experiment, incumbent: AttemptRow) -> str:
    baseline = store.baseline()
    if baseline is None or incumbent.id == 0:
        return ""
    ratio = times_better(baseline.metric, incumbent.metric, experiment.config.objective.direction)
    return "" if ratio is None else f"x{ratio:.2f}"
