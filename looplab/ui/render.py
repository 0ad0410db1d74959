"""Views → HTML with Jinja2 (autoescaped) and Pygments; one renderer for report.html and the dashboard."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from looplab.propose import repair
from looplab.records import times_better
from looplab.report import runs
from looplab.store import AttemptRow
from looplab.ui import charts, templates
from looplab.ui.views import (
    OUTCOME_COLORS,
    View,
    attempt_table,
    gain,
    outcome_name,
    parent_of,
    summary,
    winner_cards,
)

FILE_CHARS = 200_000  # a runaway reply must not make the attempt page unusable
_FORMATTER = HtmlFormatter(cssclass="hl-code", style="default")


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def _x(v: float | None) -> str:
    return "—" if v is None else f"x{v:.3f}"


def _usd(v: float | None) -> str:
    return "unknown" if v is None else f"${v:.4f}"


def _int(v: int | None) -> str:
    return "0" if not v else f"{int(v):,}"


def _secs(v: float | None) -> str:
    if v is None:
        return ""
    if v < 60:
        return f"{v:.1f} s"
    minutes, seconds = divmod(int(v), 60)
    return f"{minutes}m {seconds:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _when(ts: float | None) -> str:
    return "" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.DictLoader(templates.TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(num=_num, x=_x, usd=_usd, int_=_int, secs=_secs, when=_when)
    return env


def pygments_css() -> str:
    return _FORMATTER.get_style_defs(".hl-code")


def highlight_code(text: str, language: str) -> str:
    """Source as highlighted HTML (Pygments escapes it); unknown languages fall back to plain text."""
    try:
        lexer = DiffLexer() if language == "diff" else get_lexer_by_name(language)
    except ClassNotFound:
        lexer = get_lexer_by_name("text")
    return highlight(text, lexer, _FORMATTER)


def experiment_body(view: View, href: Callable[[int], str]) -> str:
    """Summary, charts, memory, winners with diffs and the attempts table of one experiment."""
    winners = winner_cards(view)
    for w in winners:
        w["diff_html"] = highlight_code(w["diff"], "diff")
    return _env().get_template("experiment").render(
        s=summary(view), figs=charts.all_figures(view), memory=view.memory, winners=winners,
        attempts=attempt_table(view), colors=OUTCOME_COLORS, href=href, read_at=view.read_at,
    )


def index_body(entries: list[dict[str, Any]]) -> str:
    """entries: {"key", "href", "s": summary(view)} per experiment."""
    return _env().get_template("index").render(entries=entries, colors=OUTCOME_COLORS)


def _read(path: Path) -> str | None:
    if not path.is_file():
        return None
    text = path.read_text(errors="replace")
    return text if len(text) <= FILE_CHARS else text[:FILE_CHARS] + f"\n… ({len(text) - FILE_CHARS} more characters)"


def _run_files(view: View, row: AttemptRow) -> list[dict[str, Any]]:
    """The runs/<attempt>/ trail: prompt, reply, candidate, result; then the stored source and log."""
    exp = view.experiment
    folder = runs.attempt_dir(exp, row.id)
    files = []
    turns = max(1, len(row.details.get("turns") or []))  # repair turns (looplab/propose/repair.py) each left their files
    trail = [(name, title, exp.language if name.startswith("candidate") else None)
             for turn in range(1, turns + 1) for name, title in repair.turn_files(turn, exp.ext)]
    for name, title, language in [*trail, ("result.json", "Result", "json")]:
        text = _read(folder / name)
        if text is None:
            continue
        html = highlight_code(text, language) if language else None
        files.append({"title": title, "path": str(folder / name), "text": text, "html": html})
    if not any(f["title"].startswith("Candidate") for f in files) and row.source:
        files.append({"title": "Candidate", "path": "(from the store)", "text": row.source,
                      "html": highlight_code(row.source, exp.language)})
    decision = json.dumps(row.decision, indent=2) if row.decision else ""
    if decision:
        files.append({"title": "Decision", "path": "(from the store)", "text": decision,
                      "html": highlight_code(decision, "json")})
    log = str(row.details.get("log") or "")
    if log:
        files.append({"title": "Evaluation log", "path": "(from the store)", "text": log, "html": None})
    return files


def attempt_body(view: View, row: AttemptRow, calls: list[dict[str, Any]], back: str) -> str:
    """One attempt: decision, per-case evaluation (holdout included), prompt, reply, candidate, calls."""
    holdout = set(view.experiment.holdout_cases)
    comparisons = row.decision.get("cases") or {}
    base_cases = view.baseline.cases if view.baseline else {}
    cases = []
    for name, c in row.all_cases().items():
        base = base_cases.get(name)
        base_median = base.median if base is not None and base.ok else None
        cases.append({
            "name": name, "set": "holdout" if name in holdout else "search", "ok": c.ok, "median": c.median,
            "base": base_median, "gain": times_better(base_median, c.median, view.direction) if c.ok else None,
            "cmp": comparisons.get(name), "samples": len(c.samples), "error": c.error, "metrics": c.metrics,
        })
    outcome = outcome_name(row)
    return _env().get_template("attempt").render(
        s=summary(view), a=row, outcome=outcome, color=OUTCOME_COLORS.get(outcome, "#999"),
        parent=parent_of(view, row), gain=gain(view, row.metric), cases=cases,
        files=_run_files(view, row), calls=calls, back=back,
        seconds=(row.ended_at or time.time()) - row.started_at,
    )


def page(*, title: str, heading: str, sub: str, body: str, plotly_inline: str = "", plotly_src: str = "",
         events_url: str = "", fragment_url: str = "", status: str = "", home: str = "") -> str:
    """A whole HTML page; plotly_inline embeds Plotly itself (offline file), plotly_src links to it."""
    return _env().get_template("page").render(
        title=title, heading=heading, sub=sub, body=body, css=templates.CSS, js=templates.JS,
        pygments_css=pygments_css(), plotly_inline=plotly_inline, plotly_src=plotly_src,
        events_url=events_url, fragment_url=fragment_url, status=status, home=home,
    )
