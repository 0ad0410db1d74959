"""Plotly figures (as JSON-ready dicts) for the report and the dashboard; None when there is no data yet."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from looplab.ui.views import OUTCOME_COLORS, View, best_over_time, case_speedups, cumulative_usage, lineage

HEIGHT = 340
_LAYOUT = {
    "template": "plotly_white",
    "height": HEIGHT,
    "margin": {"l": 60, "r": 30, "t": 40, "b": 50},
    "legend": {"orientation": "h", "y": -0.22},
    "hoverlabel": {"align": "left"},
}


def _done(fig: go.Figure, **layout: Any) -> dict[str, Any]:
    fig.update_layout(**{**_LAYOUT, **layout})
    return json.loads(fig.to_json())  # plain JSON types, ready to embed


def best_figure(view: View) -> dict[str, Any] | None:
    """Best metric over attempts (step line) with every attempt as a point coloured by outcome."""
    data = best_over_time(view)
    if not data["x"]:
        return None
    fig = go.Figure(go.Scatter(x=data["x"], y=data["y"], mode="lines", line_shape="hv", name="best so far",
                               line={"color": "#333333", "width": 2}, hoverinfo="skip"))
    by_outcome: dict[str, list[dict[str, Any]]] = {}
    for p in data["points"]:
        if p["y"] is not None:
            by_outcome.setdefault(p["outcome"], []).append(p)
    for outcome, pts in by_outcome.items():
        fig.add_trace(go.Scatter(
            x=[p["id"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=outcome,
            marker={"color": OUTCOME_COLORS.get(outcome, "#999999"), "size": 10,
                    "symbol": ["circle" if p["measured"] else "x" for p in pts],
                    "line": {"width": 1, "color": "#ffffff"}},
            text=[f"#{p['id']} {outcome}<br>{p['label']}" for p in pts],
            hovertemplate="%{text}<br>%{y:.4g} " + data["unit"] + "<extra></extra>",
        ))
    better = "lower" if data["direction"] == "minimize" else "higher"
    return _done(fig, title={"text": "Best metric over attempts (× = no measurement)", "x": 0},
                 xaxis={"title": "attempt", "dtick": max(1, len(data["x"]) // 12)},
                 yaxis={"title": f"{data['unit']} ({better} is better)"})


def cases_figure(view: View) -> dict[str, Any] | None:
    """Per-case gain over the baseline of the incumbent and specialists, search vs holdout side by side."""
    series = case_speedups(view)
    if not series:
        return None
    search = view.experiment.search_cases or sorted({c for s in series for c in s["search"]})
    holdout = view.experiment.holdout_cases
    with_holdout = any(s["holdout"] or s["holdout_aggregate"] is not None for s in series)
    if with_holdout:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3], shared_yaxes=True,
                            subplot_titles=("search cases", "holdout cases"))
    else:
        fig = make_subplots(rows=1, cols=1, subplot_titles=("search cases (no holdout results yet)",))
    palette = ["#2ca02c", "#17becf", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#1f77b4"]
    for i, s in enumerate(series):
        color = palette[i % len(palette)]
        common = {"name": s["label"], "marker_color": color, "legendgroup": s["label"],
                  "hovertemplate": s["label"] + " %{x}: x%{y:.3f}<extra></extra>"}
        fig.add_trace(go.Bar(x=search, y=[s["search"].get(c) for c in search], **common), row=1, col=1)
        if not with_holdout:
            continue
        if s["holdout"]:
            names, values = holdout, [s["holdout"].get(c) for c in holdout]
        elif s["holdout_aggregate"] is not None:
            names, values = ["all holdout (vs incumbent)"], [s["holdout_aggregate"]]
        else:
            names, values = [], []
        fig.add_trace(go.Bar(x=names, y=values, showlegend=False, **common), row=1, col=2)
    for col in (1, 2) if with_holdout else (1,):
        fig.add_hline(y=1.0, line_dash="dot", line_color="#666666", row=1, col=col)
    fig.update_yaxes(title_text="speedup vs baseline (×)", row=1, col=1)
    return _done(fig, title={"text": "Per-case speedup", "x": 0}, barmode="group")


def usage_figure(view: View) -> dict[str, Any] | None:
    """Cumulative prompt/completion tokens (stacked) and cost on a second axis."""
    data = cumulative_usage(view)
    if not data["x"]:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=data["x"], y=data["prompt"], name="prompt tokens", stackgroup="tokens",
                             line={"color": "#9ecae1"}), secondary_y=False)
    fig.add_trace(go.Scatter(x=data["x"], y=data["completion"], name="completion tokens", stackgroup="tokens",
                             line={"color": "#3182bd"}), secondary_y=False)
    known = [c for c in data["cost"] if c is not None]
    if known:
        fig.add_trace(go.Scatter(x=data["x"][: len(known)], y=known, name="cost (USD)", mode="lines+markers",
                                 line={"color": "#d62728"}), secondary_y=True)
    fig.update_yaxes(title_text="tokens (cumulative)", secondary_y=False)
    top = max(known, default=0.0)
    fig.update_yaxes(title_text="USD (cumulative)", secondary_y=True,
                     range=[0, top * 1.1 if top > 0 else 1.0], showgrid=False)
    title = "Tokens and cost" + ("" if len(known) == len(data["x"]) else " (cost unknown for some calls)")
    return _done(fig, title={"text": title, "x": 0}, xaxis={"title": "attempt"})


def winners_figure(view: View) -> dict[str, Any] | None:
    """Each winner's speedup over the incumbent it beat, with its confidence interval."""
    rows = [r for r in view.winners if r.speedup is not None]
    if not rows:
        return None
    fig = go.Figure()
    for r in rows:
        outcome = r.outcome.value if r.outcome else "running"
        low = r.ci_low if r.ci_low is not None else r.speedup
        high = r.ci_high if r.ci_high is not None else r.speedup
        fig.add_trace(go.Scatter(
            x=[r.speedup], y=[f"#{r.id}"], mode="markers", name=f"#{r.id} {outcome}", showlegend=False,
            marker={"color": OUTCOME_COLORS.get(outcome, "#999999"), "size": 11},
            error_x={"type": "data", "symmetric": False, "array": [high - r.speedup],
                     "arrayminus": [r.speedup - low], "thickness": 2},
            hovertemplate=f"#{r.id} {outcome}: x{r.speedup:.3f} [{low:.3f}, {high:.3f}]<extra></extra>",
        ))
    fig.add_vline(x=1.0, line_dash="dot", line_color="#666666")
    return _done(fig, title={"text": "Winners: speedup over the incumbent they beat (confidence interval)", "x": 0},
                 height=max(200, 90 + 36 * len(rows)), xaxis={"title": "speedup (×)"},
                 yaxis={"autorange": "reversed", "type": "category"})


def lineage_figure(view: View) -> dict[str, Any] | None:
    """Which parent each winner came from: nodes at (attempt, gain over baseline), edges parent → child."""
    nodes = [n for n in lineage(view) if n["gain"] is not None]
    if len(nodes) < 2:
        return None
    where = {n["id"]: n for n in nodes}
    ex: list[float | None] = []
    ey: list[float | None] = []
    for n in nodes:
        parent = where.get(n["parent"])
        if parent is not None:
            ex += [parent["id"], n["id"], None]
            ey += [parent["gain"], n["gain"], None]
    fig = go.Figure(go.Scatter(x=ex, y=ey, mode="lines", line={"color": "#999999"}, hoverinfo="skip",
                               showlegend=False))
    fig.add_trace(go.Scatter(
        x=[n["id"] for n in nodes], y=[n["gain"] for n in nodes], mode="markers+text", showlegend=False,
        text=[f"#{n['id']}" for n in nodes], textposition="top center",
        marker={"size": 12, "color": [OUTCOME_COLORS.get(n["outcome"], "#999999") for n in nodes]},
        customdata=[[n["parent"], n["label"]] for n in nodes],
        hovertemplate="#%{x} from #%{customdata[0]}: x%{y:.3f} over baseline<br>%{customdata[1]}<extra></extra>",
    ))
    return _done(fig, title={"text": "Lineage: each winner and the attempt it was built on", "x": 0},
                 xaxis={"title": "attempt"}, yaxis={"title": "speedup vs baseline (×)"})


def all_figures(view: View) -> dict[str, dict[str, Any] | None]:
    return {
        "best": best_figure(view),
        "cases": cases_figure(view),
        "usage": usage_figure(view),
        "winners": winners_figure(view),
        "lineage": lineage_figure(view),
    }
