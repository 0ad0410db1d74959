"""report.html: one self-contained page (Plotly embedded, no CDN) regenerated from the store."""

from __future__ import annotations

import time
from pathlib import Path

from plotly.offline import get_plotlyjs

from looplab.config import Experiment
from looplab.filesets import write_atomic
from looplab.layout import REPORT_HTML
from looplab.report import runs
from looplab.store import Store
from looplab.ui import render
from looplab.ui.views import build_view


def write_html_report(store: Store, experiment: Experiment) -> Path:
    """Write EXPERIMENT/report.html from the store (read only) and return its path.

    Attempt numbers link to runs/<attempt>/ next to the report, so the trail opens from the page.
    """
    view = build_view(store, experiment)

    def href(attempt_id: int) -> str:
        return runs.attempt_dir(experiment, attempt_id).relative_to(experiment.root).as_posix() + "/"

    body = render.experiment_body(view, href)
    html = render.page(
        title=f"looplab · {experiment.name}", heading=experiment.name,
        sub=f"report of {experiment.root}", body=body, plotly_inline=get_plotlyjs(),
        status=f"written {time.strftime('%Y-%m-%d %H:%M:%S')}",
    )
    path = experiment.root / REPORT_HTML
    write_atomic(path, html, encoding="utf-8")  # a browser reloading the file never sees half a report
    return path
