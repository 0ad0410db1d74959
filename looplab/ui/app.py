"""The dashboard's ASGI app: GET-only pages over read-only stores, live through server-sent events.

Every request opens the store read-only (SQLite `mode=ro`) and closes it; nothing here can write an
experiment, start a run or execute anything sent by the browser.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import anyio
from plotly.offline import get_plotlyjs
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from looplab.config import Experiment, load_experiment
from looplab.errors import UserError
from looplab.store import Store
from looplab.store.readonly import open_readonly
from looplab.ui import render
from looplab.ui.views import View, build_view, summary

POLL_S = 0.5  # how often each open page's event stream looks for new attempts
KEEPALIVE_S = 15.0
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
# Inline scripts carry the figures; everything else comes from this server only.
CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")


@dataclass
class Entry:
    key: str
    experiment: Experiment

    @property
    def href(self) -> str:
        return f"/e/{self.key}/"


def _keys(experiments: list[Experiment]) -> list[Entry]:
    """URL-safe, unique keys from experiment names (two folders may share a name)."""
    entries, seen = [], set()
    for exp in experiments:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", exp.name).strip("-.") or "experiment"
        key, n = base, 1
        while key in seen:
            n += 1
            key = f"{base}-{n}"
        seen.add(key)
        entries.append(Entry(key, exp))
    return entries


@contextmanager
def _store(exp: Experiment, url: str | None) -> Iterator[Store | None]:
    store = open_readonly(exp, url)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def _view(exp: Experiment, url: str | None) -> tuple[View, str]:
    """The experiment's view and the version token of the data it was built from."""
    with _store(exp, url) as store:
        return build_view(store, exp), _token(store)


def _token(store: Store | None) -> str:
    raw = repr(store.fingerprint()) if store is not None else "none"
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def _version(exps: list[Experiment], url: str | None) -> str:
    tokens = []
    for exp in exps:
        with _store(exp, url) as store:
            tokens.append(_token(store))
    return tokens[0] if len(tokens) == 1 else hashlib.sha1("".join(tokens).encode()).hexdigest()[:12]


@cache
def _plotly_js() -> str:
    return get_plotlyjs()


def create_app(experiment_dirs: list[Path], *, allowed_hosts: list[str] | None = None,
               store: str | None = None) -> Starlette:
    """The dashboard over these experiment folders. allowed_hosts guards against DNS rebinding:
    by default only loopback names are answered; ["*"] answers any Host header. store: a store
    URL as for `looplab run --store` (default: $LOOPLAB_STORE, else each experiment's SQLite file)."""
    if not experiment_dirs:
        raise UserError("looplab ui: no experiment given (fix: pass one or more EXPERIMENT_DIR)")
    entries = _keys([load_experiment(d) for d in experiment_dirs])
    by_key = {e.key: e for e in entries}

    def entry(request: Request) -> Entry | None:
        return by_key.get(request.path_params["key"])

    def page(body: str, *, heading: str, sub: str, events: str, fragment: str, version: str) -> HTMLResponse:
        html = render.page(title=f"looplab · {heading}", heading=heading, sub=sub, body=body,
                           plotly_src="/static/plotly.min.js", events_url=f"{events}?since={version}",
                           fragment_url=fragment, status="connecting…", home="/")
        return HTMLResponse(html)

    def not_found(what: str) -> HTMLResponse:
        return HTMLResponse(f"<p>{what} not found. <a href='/'>All experiments</a></p>", status_code=404)

    def index_body() -> tuple[str, str]:
        items, tokens = [], []
        for e in entries:
            view, token = _view(e.experiment, store)
            items.append({"key": e.key, "href": e.href, "s": summary(view)})
            tokens.append(token)
        return render.index_body(items), hashlib.sha1("".join(tokens).encode()).hexdigest()[:12]

    def index(request: Request) -> Response:
        if len(entries) == 1:
            return RedirectResponse(entries[0].href, status_code=307)
        body, version = index_body()
        return page(body, heading="experiments", sub=f"{len(entries)} experiments", events="/events",
                    fragment="/fragment", version=version)

    def index_fragment(request: Request) -> Response:
        return HTMLResponse(index_body()[0])

    rendered: dict[str, tuple[str, str]] = {}  # key → (version, body): every open page asks after each change

    def experiment_body(e: Entry) -> tuple[str, str]:
        version = _version([e.experiment], store)
        hit = rendered.get(e.key)
        if hit is not None and hit[0] == version:
            return hit[1], version
        view, version = _view(e.experiment, store)
        body = render.experiment_body(view, lambda i: f"{e.href}attempts/{i}")
        rendered[e.key] = (version, body)
        return body, version

    def experiment_page(request: Request) -> Response:
        e = entry(request)
        if e is None:
            return not_found("experiment")
        body, version = experiment_body(e)
        return page(body, heading=e.experiment.name, sub=str(e.experiment.root), events=f"{e.href}events",
                    fragment=f"{e.href}fragment", version=version)

    def experiment_fragment(request: Request) -> Response:
        e = entry(request)
        return HTMLResponse(experiment_body(e)[0]) if e else not_found("experiment")

    def attempt_body(e: Entry, attempt_id: int) -> tuple[str, str] | None:
        with _store(e.experiment, store) as opened:
            row = opened.attempt(attempt_id) if opened is not None else None
            if opened is None or row is None:
                return None
            view = build_view(opened, e.experiment)
            return render.attempt_body(view, row, opened.calls(attempt_id), back=e.href), _token(opened)

    def attempt_page(request: Request) -> Response:
        e = entry(request)
        attempt_id = request.path_params["attempt"]
        found = attempt_body(e, attempt_id) if e else None
        if e is None or found is None:
            return not_found(f"attempt {attempt_id}")
        url = f"{e.href}attempts/{attempt_id}"
        return page(found[0], heading=f"{e.experiment.name} · attempt {attempt_id}", sub=str(e.experiment.root),
                    events=f"{e.href}events", fragment=f"{url}/fragment", version=found[1])

    def attempt_fragment(request: Request) -> Response:
        e = entry(request)
        found = attempt_body(e, request.path_params["attempt"]) if e else None
        return HTMLResponse(found[0]) if found else not_found("attempt")

    def status_json(request: Request) -> Response:
        e = entry(request)
        if e is None:
            return JSONResponse({"error": "no such experiment"}, status_code=404)
        view, version = _view(e.experiment, store)
        return JSONResponse({**summary(view), "version": version})

    def events_for(exps: list[Experiment], request: Request) -> StreamingResponse:
        return StreamingResponse(_events(exps, store, request.query_params.get("since", "")),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def index_events(request: Request) -> Response:
        return events_for([e.experiment for e in entries], request)

    def experiment_events(request: Request) -> Response:
        e = entry(request)
        return events_for([e.experiment], request) if e else not_found("experiment")

    def plotly_js(request: Request) -> Response:
        return Response(_plotly_js(), media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/fragment", index_fragment, methods=["GET"]),
        Route("/events", index_events, methods=["GET"]),
        Route("/static/plotly.min.js", plotly_js, methods=["GET"]),
        Route("/e/{key}/", experiment_page, methods=["GET"]),
        Route("/e/{key}/fragment", experiment_fragment, methods=["GET"]),
        Route("/e/{key}/events", experiment_events, methods=["GET"]),
        Route("/e/{key}/status.json", status_json, methods=["GET"]),
        Route("/e/{key}/attempts/{attempt:int}", attempt_page, methods=["GET"]),
        Route("/e/{key}/attempts/{attempt:int}/fragment", attempt_fragment, methods=["GET"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_HOSTS),
                  Middleware(SecurityHeaders)]
    return Starlette(routes=routes, middleware=middleware)


class SecurityHeaders:
    """Adds the CSP and friends to every response (plain ASGI, so event streams pass untouched)."""

    HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer")]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _events(exps: list[Experiment], url: str | None, since: str) -> AsyncIterator[str]:
    """Server-sent events: 'update' whenever the stores change (and at once if the page is stale)."""
    yield "retry: 2000\n\n"
    last, quiet = since, 0
    while True:
        version = await anyio.to_thread.run_sync(_version, exps, url)
        if version != last:
            last, quiet = version, 0
            yield f"event: update\ndata: {version}\n\n"
        elif (quiet := quiet + 1) * POLL_S >= KEEPALIVE_S:
            quiet = 0
            yield ": keep-alive\n\n"  # proxies and browsers drop streams that stay silent too long
        await asyncio.sleep(POLL_S)
