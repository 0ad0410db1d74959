"""The read-only web dashboard (`looplab ui`). Starlette and uvicorn load only when it is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def create_app(experiment_dirs: list[Path], *, store: str | None = None) -> Any:
    """The dashboard as an ASGI app over these experiment folders (GET only, store opened read-only).

    store: a store URL as for `looplab run --store` (default: $LOOPLAB_STORE, else the SQLite files).
    """
    from looplab.ui.app import create_app as _create_app

    return _create_app(experiment_dirs, store=store)


def serve(experiment_dirs: list[Path], host: str = "127.0.0.1", port: int = 8765, store: str | None = None) -> None:
    """Serve the dashboard until interrupted; warns when host is not a loopback address."""
    from looplab.ui.server import serve as _serve

    _serve(experiment_dirs, host=host, port=port, store=store)


__all__ = ["create_app", "serve"]
