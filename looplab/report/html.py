"""report.html: one self-contained page (Plotly embedded, no CDN) regenerated from the store."""

from __future__ import annotations

import os
import time
from pathlib import Path

from plotly.offline import get_plotlyjs

from looplab.config import Experiment
from looplab.report import runs
from looplab.store import Store
from looplab.ui import render
from looplab.ui.views import build_view

REPORT_NAME = "report.html"


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
    path = experiment.root / REPORT_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)  # a browser reloading the file never sees half a report
    return path
