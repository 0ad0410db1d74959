"""The read-only web dashboard (`looplab ui`). Starlette and uvicorn load only when it is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def create_app(experiment_dirs: list[Path]) -> Any:
    """The dashboard as an ASGI app over these experiment folders (GET only, store opened read-only)."""
    from looplab.ui.app import create_app as _create_app

    return _create_app(experiment_dirs)


def serve(experiment_dirs: list[Path], host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the dashboard until interrupted; warns when host is not a loopback address."""
    from looplab.ui.server import serve as _serve

    _serve(experiment_dirs, host=host, port=port)


__all__ = ["create_app", "serve"]
