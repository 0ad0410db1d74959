"""SCORES.json / SCORES.md and `looplab status --json`, regenerated from the store from scratch.

The same store always renders the same files (no wall-clock stamps), so git diffs of SCORES
show only what the search changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from looplab.acceptance.stats import geomean
from looplab.config import Direction, Experiment, ObjectiveKind
from looplab.filesets import write_atomic
from looplab.layout import SCORES_JSON, SCORES_MD
from looplab.propose.memory import write_memory
from looplab.records import Outcome, times_better
from looplab.store import AttemptRow, Store


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def _x(x: float | None, lo: float | None = None, hi: float | None = None) -> str:
    if x is None:
        return "—"
    ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    return f"x{x:.2f}{ci}"


def _win(w: dict[str, Any]) -> str:
    """The gain over the incumbent it beat, on the search cases and (side by side) on the holdout cases."""
    text = _x(w["win"], w["ci_low"], w["ci_high"])
    return text if w["holdout"] is None else f"{text}; holdout {_x(w['holdout'])}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}%"


def _reference_line(ref: dict[str, Any] | None) -> list[str]:
    if ref is None:
        return []
    return [f"- Reference ({_cell(ref['what'])}): best at {_pct(ref['incumbent_percent'])} of it, "
            f"seed at {_pct(ref['seed_percent'])} (geomean over search cases)"]


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts)) if ts is not None else "—"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def status_dict(store: Store, experiment: Experiment) -> dict:
    """The exact shape `looplab status --json` prints."""
    direction = experiment.config.objective.direction
    counts = store.outcome_counts()
    base, inc = store.baseline(), store.incumbent()
    base_metric = base.metric if base else None
    data = {
        "experiment": experiment.name,
        "description": experiment.config.description,
        "attempts": sum(counts.values()),
        "in_flight": len(store.in_flight()),
        "loops": store.live_loops(),  # `looplab run` processes working on this experiment now
        "outcomes": counts,
        "best": {
            "metric": inc.metric if inc else None,
            "unit": experiment.config.objective.unit,
            "speedup": times_better(base_metric, inc.metric, direction) if inc else None,
            "commit": inc.commit if inc else None,
            "attempt": inc.id if inc else None,
        },
        "baseline": {"metric": base_metric},
        "usage": store.usage_total().to_dict(),
    }
    judge = store.usage_total("judge")
    if judge.total_tokens or judge.cost_usd:  # a judge model was called (judged objectives): its cost apart
        data["usage_by_kind"] = {kind: store.usage_total(kind).to_dict() for kind in CALL_KINDS}
    return data


CALL_KINDS = ("propose", "repair", "reflect", "judge")


def cost_text(usage: dict) -> str:
    return "unknown" if usage["cost_usd"] is None else f"${usage['cost_usd']:.4f}"


def cost_split(data: dict) -> str:
    """" — proposals $0.0100 (1,200 tokens), judge $0.0200 (3,400 tokens)" once a judge model was called."""
    kinds = data.get("usage_by_kind") or {}
    judge = kinds.get("judge")
    if not judge or not judge["total_tokens"] and not judge["cost_usd"]:
        return ""
    names = {"propose": "proposals", "repair": "repairs", "reflect": "reflection", "judge": "judge"}
    parts = [f"{names[k]} {cost_text(u)} ({u['total_tokens']:,} tokens)" for k, u in kinds.items()
             if k == "propose" or u["total_tokens"] or u["cost_usd"]]
    return f" — {', '.join(parts)}"


def _winner(row: AttemptRow, base_metric: float | None, direction: str) -> dict[str, Any]:
    return {
        "attempt": row.id,
        "timestamp": _when(row.ended_at),
        "model": row.model,
        "metric": row.metric,
        "vs_seed": times_better(base_metric, row.metric, direction),
        "win": row.speedup,  # vs the incumbent it beat
        "ci_low": row.ci_low,
        "ci_high": row.ci_high,
        "commit": row.commit,
        "strategy": row.strategy,
        "outcome": row.outcome.value if row.outcome else None,
        "holdout": row.holdout.speedup if row.holdout else None,  # vs the same incumbent, on the hidden cases
        "revalidated": bool(row.decision.get("revalidated")),
    }


def _cases(rows: list[AttemptRow], experiment: Experiment, direction: str) -> list[dict[str, Any]]:
    """Per case: the best median any winner (or the seed) reached, and who reached it."""
    holdout = experiment.holdout_cases
    names = experiment.search_cases + holdout
    results = {r.id: r.all_cases() for r in rows}
    names += sorted({c for r in rows for c in results[r.id]} - set(names))  # cases the harness chose itself
    base = next((r for r in rows if r.outcome is Outcome.BASELINE), None)
    out = []
    for name in names:
        best: tuple[float, AttemptRow] | None = None
        for r in rows:
            c = results[r.id].get(name)
            m = c.median if c is not None and c.ok else None
            if m is None:
                continue
            if best is None or (m < best[0] if direction == Direction.MINIMIZE else m > best[0]):
                best = (m, r)
        if best is None and name in holdout:
            continue  # no holdout data yet: keep the table to what was measured
        base_case = results[base.id].get(name) if base else None
        base_median = base_case.median if base_case is not None and base_case.ok else None
        out.append({
            "case": name,
            "kind": "holdout" if name in holdout else "search",
            "best_median": best[0] if best else None,
            "attempt": best[1].id if best else None,
            "commit": best[1].commit if best else None,
            "seed_median": base_median,
            "vs_seed": times_better(base_median, best[0], direction) if best else None,
        })
    return out


def _reference(store: Store, cases: list[dict[str, Any]], experiment: Experiment,
               direction: str) -> dict[str, Any] | None:
    """Per case '% of reference' (added to `cases`), and the incumbent's and seed's geomean over search cases."""
    ref = experiment.reference
    if ref is None:
        return None
    for c in cases:
        c["reference"] = ref.values.get(c["case"])
        c["pct_of_reference"] = ref.percent(c["case"], c["best_median"], direction)

    def overall(row: AttemptRow | None) -> float | None:
        medians = [row.cases[n].median if row and n in row.cases else None for n in experiment.search_cases]
        pcts = [ref.percent(n, m, direction) for n, m in zip(experiment.search_cases, medians, strict=True)]
        return geomean(pcts) if pcts and all(p is not None for p in pcts) else None

    return {"what": ref.what, "incumbent_percent": overall(store.incumbent()), "seed_percent": overall(store.baseline())}


def scores_dict(store: Store, experiment: Experiment) -> dict:
    """status_dict plus the winners and per-case tables: the content of SCORES.json."""
    direction = experiment.config.objective.direction
    data = status_dict(store, experiment)
    base_metric = data["baseline"]["metric"]
    rows = store.attempts(outcomes=[Outcome.BASELINE, Outcome.ACCEPTED, Outcome.SPECIALIST])
    data["direction"] = direction
    data["winners"] = [_winner(r, base_metric, direction) for r in rows]
    data["cases"] = _cases(rows, experiment, direction)
    data["reference"] = _reference(store, data["cases"], experiment, direction)
    if experiment.config.objective.kind is ObjectiveKind.JUDGED:
        data["judged"] = True  # no measured values: each winner won comparisons against the incumbent it beat
    return data


def render_scores_md(data: dict) -> str:
    unit, best, usage = data["best"]["unit"], data["best"], data["usage"]
    outcomes = ", ".join(f"{k} {v}" for k, v in data["outcomes"].items()) or "none yet"
    cost = "unknown" if usage["cost_usd"] is None else f"${usage['cost_usd']:.4f}"
    where = f"attempt #{best['attempt']}" + (f", commit {best['commit']}" if best["commit"] else "")
    lines = [
        f"# SCORES — {data['experiment']}",
        "",
        *([data["description"], ""] if data.get("description") else []),
        *([f"- Best: {where if best['attempt'] is not None else 'no baseline yet'} (judged: a model compared "
           "outputs; Win is the odds of a win over a loss against the incumbent it replaced, and on the "
           "hidden holdout cases)"] if data.get("judged") else [
          f"- Best: {_num(best['metric'])} {unit} ({where if best['attempt'] is not None else 'no baseline yet'})",
          f"- Seed baseline: {_num(data['baseline']['metric'])} {unit}",
          f"- Speedup vs seed: {_x(best['speedup'])} ({data['direction']} {unit})"]),
        f"- Attempts: {data['attempts']} finished, {data['in_flight']} in flight — {outcomes}",
        f"- Tokens: prompt {usage['prompt_tokens']:,} · completion {usage['completion_tokens']:,} · "
        f"cached {usage['cached_tokens']:,} · total {usage['total_tokens']:,}",
        f"- Cost: {cost}{cost_split(data)}",
        *_reference_line(data.get("reference")),
        "",
        "## Winners",
        "",
        f"| Timestamp | Model | Metric ({unit}) | Seed | Win | Commit | Notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in data["winners"]:
        notes = w["outcome"] if not w["strategy"] else f"{w['strategy']} ({w['outcome']})"
        if w["revalidated"]:
            notes += " — over 10x: re-validated with fresh inputs"
        lines.append(
            f"| {w['timestamp']} | {_cell(w['model'] or '—')} | {_num(w['metric'])} | {_x(w['vs_seed'])} | "
            f"{_win(w)} | {w['commit'] or '—'} | {_cell(notes)} |"
        )
    if data.get("judged"):
        return "\n".join(lines) + "\n"  # judged cases have no values to tabulate
    ref = data.get("reference") is not None
    lines += ["", "## Best per case", "",
              f"| Case | Kind | Best median ({unit}) | Seed median | vs seed |{' % of reference |' if ref else ''}"
              " Attempt | Commit |",
              "| --- | --- | --- | --- | --- |" + (" --- |" if ref else "") + " --- | --- |"]
    for c in data["cases"]:
        attempt = f"#{c['attempt']}" if c["attempt"] is not None else "—"
        pct = f" {_pct(c.get('pct_of_reference'))} |" if ref else ""
        lines.append(
            f"| {_cell(c['case'])} | {c['kind']} | {_num(c['best_median'])} | {_num(c['seed_median'])} | "
            f"{_x(c['vs_seed'])} |{pct} {attempt} | {c['commit'] or '—'} |"
        )
    return "\n".join(lines) + "\n"


def write_scores(store: Store, experiment: Experiment) -> dict:
    """Regenerate SCORES.json and SCORES.md in the experiment folder; returns the data."""
    data = scores_dict(store, experiment)
    write_atomic(experiment.root / SCORES_JSON, json.dumps(data, indent=2) + "\n")
    write_atomic(experiment.root / SCORES_MD, render_scores_md(data))
    return data


def write_all(store: Store, experiment: Experiment) -> None:
    """SCORES and MEMORY, both regenerated from the store."""
    _PENDING.pop(experiment.root, None)
    write_scores(store, experiment)
    write_memory(store, experiment)
    _WRITTEN[experiment.root] = time.monotonic()


REFRESH_S = 5.0  # during a run, SCORES and MEMORY are rewritten at most this often (and at its end)
_WRITTEN: dict = {}  # experiment root -> when its renderings were last written (monotonic)
_PENDING: dict = {}  # experiment root -> the scheduled rewrite (an asyncio TimerHandle), if any


def refresh(store: Store, experiment: Experiment) -> None:
    """After an attempt: rewrite the renderings now if the last rewrite is REFRESH_S old, else once
    when it will be (a winner's archiving and the end of the run write at once: keeping.py, flush())."""
    root = experiment.root
    wait = _WRITTEN.get(root, -REFRESH_S) + REFRESH_S - time.monotonic()
    if wait <= 0:
        write_all(store, experiment)
        return
    if root in _PENDING:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        write_all(store, experiment)
        return

    def later() -> None:
        if _PENDING.pop(root, None) is not None:
            with contextlib.suppress(Exception):  # a store that went away: flush() at the end says so
                write_all(store, experiment)

    _PENDING[root] = loop.call_later(wait, later)


def flush(store: Store, experiment: Experiment) -> None:
    """At the end of a run: a rewrite still waiting happens now."""
    handle = _PENDING.pop(experiment.root, None)
    if handle is not None:
        handle.cancel()
        write_all(store, experiment)
