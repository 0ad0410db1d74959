"""The dashboard on a real uvicorn server on 127.0.0.1, over HTTP and in headless Chromium (Playwright).

Screenshots go to pytest's tmp dir; set LOOPLAB_KEEP_ARTIFACTS=1 to copy them to tests/artifacts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from looplab.config import load_experiment
from looplab.errors import UserError
from looplab.records import Outcome
from looplab.report.html import write_html_report
from looplab.store import Store
from looplab.ui import create_app
from looplab.ui.server import find_experiments, host_warning, serve

sys.path.insert(0, str(Path(__file__).parent))
from test_html_report import FIXTURE, IKJ, add_attempt, record_search  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BLOCKED = "--blocked--"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a background thread, stopped (and joined) at the end of the test."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def get(url: str, *, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    return record_search(tmp_path)


@pytest.fixture
def server(experiment: Path) -> Iterator[Server]:
    with Server(create_app([experiment])) as s:
        yield s


def test_http_pages_are_get_only_loopback_only_and_never_write(experiment: Path, server: Server) -> None:
    db = load_experiment(experiment).store_path
    with Store(db):
        pass  # checkpoint the WAL into the main file, so the bytes below are the whole store
    before = db.read_bytes()
    status, _, page = get(f"{server.url}/")
    assert status == 200 and "matmul" in page and 'id="attempt-7"' in page  # / redirects to the one experiment
    status, headers, page = get(f"{server.url}/e/matmul/attempts/4")
    assert status == 200 and "Make matmul faster (attempt 4)" in page and "const float aik" in page
    assert "n61" in page and "holdout" in page  # the person sees the holdout results the model never does
    assert "default-src 'none'" in headers["content-security-policy"]
    assert get(f"{server.url}/e/matmul/attempts/99")[0] == 404
    assert get(f"{server.url}/e/nope/")[0] == 404
    for method in ("POST", "PUT", "DELETE"):
        assert get(f"{server.url}/e/matmul/", method=method)[0] == 405
    assert get(f"{server.url}/e/matmul/", headers={"Host": "attacker.example"})[0] == 400  # DNS rebinding
    status, _, js = get(f"{server.url}/static/plotly.min.js")
    assert status == 200 and len(js) > 1_000_000
    assert db.read_bytes() == before


def test_event_stream_says_update_when_the_page_is_stale(experiment: Path, server: Server) -> None:
    status, _, summary = get(f"{server.url}/e/matmul/status.json")
    version = __import__("json").loads(summary)["version"]
    with urllib.request.urlopen(f"{server.url}/e/matmul/events?since=stale", timeout=15) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = [stream.readline().decode().strip() for _ in range(4)]
    assert lines == ["retry: 2000", "", "event: update", f"data: {version}"]


def _browser(playwright):  # noqa: ANN001, ANN202 - Playwright's own types
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _keep(shot: Path) -> None:
    if os.environ.get("LOOPLAB_KEEP_ARTIFACTS"):
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / shot.name)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(apt-get install -y chromium)")
def test_new_attempt_appears_in_the_open_page_without_a_reload(experiment: Path, server: Server,
                                                              tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/")
            expect(page.locator("header h1")).to_contain_text("matmul")
            expect(page.locator(".js-plotly-plot")).to_have_count(5)  # every chart drawn
            expect(page.locator("#status")).to_have_text("live", timeout=15_000)
            expect(page.locator("#attempts tbody tr")).to_have_count(8)
            expect(page.locator("#attempt-8")).to_have_count(0)
            page.evaluate("window.stillTheSamePage = true")

            new_id = add_attempt(experiment, Outcome.ACCEPTED, strategy="blocked 32x32 tiles", source=IKJ + "// t\n",
                                 us={"n96": 300.0, "n128": 700.0, "n160": 1400.0}, speedup=1.4, commit="0ddba11",
                                 reason="x1.40 [1.20, 1.60] over #4 " + BLOCKED, tokens=(1200, 300))
            assert new_id == 8
            row = page.locator("#attempt-8")
            expect(row).to_contain_text(BLOCKED, timeout=20_000)
            expect(row).to_contain_text("accepted")
            assert page.evaluate("window.stillTheSamePage") is True  # updated in place, not reloaded
            expect(page.locator(".cards .card").first).to_contain_text("#8")
            expect(page.locator(".js-plotly-plot")).to_have_count(5)
            best_points = page.evaluate(
                "document.getElementById('chart-best').data.flatMap(t => t.mode === 'markers' ? t.x : [])")
            assert sorted(best_points) == list(range(1, 9))
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            _keep(shot)

            page.locator("#attempt-8 a").first.click()
            expect(page.locator("main")).to_contain_text("blocked 32x32 tiles")
            expect(page.locator("main")).to_contain_text("Make matmul faster (attempt 8)")
            shot = tmp_path / "attempt.png"
            page.screenshot(path=str(shot), full_page=True)
            _keep(shot)
            assert errors == []
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_html_draws_its_charts_with_the_network_blocked(experiment: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    exp = load_experiment(experiment)
    with Store(exp.store_path) as store:
        report = write_html_report(store, exp)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            remote: list[str] = []

            def block(route):  # noqa: ANN001, ANN202
                if route.request.url.startswith("file:"):
                    return route.continue_()
                remote.append(route.request.url)
                return route.abort()

            page.route("**/*", block)
            page.goto(report.as_uri())
            expect(page.locator(".js-plotly-plot")).to_have_count(5)
            expect(page.locator("#attempt-4")).to_contain_text("ikj loop order")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            _keep(shot)
            assert remote == []
        finally:
            browser.close()


def test_serve_warns_off_loopback_and_refuses_a_busy_port(experiment: Path) -> None:
    assert host_warning("127.0.0.1") is None and host_warning("::1") is None and host_warning("localhost") is None
    assert "read" in host_warning("0.0.0.0") and "--host 127.0.0.1" in host_warning("192.168.1.5")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UserError, match=r"--port \d+: cannot listen there.*fix:"):
            serve([experiment], host="127.0.0.1", port=busy.getsockname()[1])
    with pytest.raises(UserError, match="no experiment.toml"):
        find_experiments([], cwd=experiment.parent)
    assert find_experiments([], cwd=experiment) == [experiment]
    with pytest.raises(UserError, match="experiment.toml"):
        create_app([experiment.parent])


def test_serve_on_all_interfaces_prints_the_warning_and_still_answers(experiment: Path) -> None:
    port = free_port()
    code = f"from looplab.ui import serve; serve([{str(experiment)!r}], host='0.0.0.0', port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, page = get(f"http://127.0.0.1:{port}/e/matmul/")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
        assert status == 200 and "matmul" in page
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert "warning: listening on 0.0.0.0" in err and f":{port}/" in out


def test_an_experiment_that_has_not_run_yet_shows_and_fills_in(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "matmul"
    shutil.copytree(FIXTURE, fresh)
    other = record_search(tmp_path / "b")
    with Server(create_app([fresh, other])) as s:
        status, _, index = get(f"{s.url}/")
        assert status == 200 and 'href="/e/matmul/"' in index and 'href="/e/matmul-2/"' in index
        assert "No attempts yet" in get(f"{s.url}/e/matmul/")[2]
        assert not load_experiment(fresh).store_path.exists()  # looking did not create a store
        add_attempt(fresh, Outcome.EXTRACT_ERROR, reason="no fenced code block in the reply")
        page = get(f"{s.url}/e/matmul/")[2]
        assert 'id="attempt-1"' in page and "No attempts yet" not in page
        assert 'id="attempt-7"' in get(f"{s.url}/e/matmul-2/")[2]
