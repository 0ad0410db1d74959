"""`looplab ui`: find the experiments, check the address, then serve the dashboard with uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path

from looplab.errors import UserError

EXPERIMENTS_DIR = "experiments"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


def host_warning(host: str) -> str | None:
    """The warning printed for a non-loopback address, or None for 127.0.0.1, ::1 and localhost."""
    if is_loopback(host):
        return None
    return (f"looplab ui: warning: listening on {host} lets anyone who can reach this machine read the "
            "experiments (prompts, replies, code, results); the dashboard is read-only, but use "
            "--host 127.0.0.1 unless you mean to share it")


def find_experiments(dirs: list[Path], cwd: Path | None = None) -> list[Path]:
    """The folders given, or else the current folder if it is an experiment, or else ./experiments/*."""
    if dirs:
        return list(dirs)
    cwd = cwd or Path.cwd()
    if (cwd / "experiment.toml").is_file():
        return [cwd]
    found = sorted(p.parent for p in (cwd / EXPERIMENTS_DIR).glob("*/experiment.toml"))
    if not found:
        raise UserError(f"{cwd}: no experiment.toml here or in {EXPERIMENTS_DIR}/*/ "
                        "(fix: pass EXPERIMENT_DIR, e.g. `looplab ui experiments/linear`)")
    return found


def _check_store(dirs: list[Path], store: str | None) -> None:
    """A store URL that is wrong or a server that is down fails now, as one line, not on every page."""
    from looplab.config import load_experiment
    from looplab.store.readonly import open_readonly

    for d in dirs:
        opened = open_readonly(load_experiment(d), store)
        if opened is not None:
            opened.close()


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError as e:
            raise UserError(f"--host {host} --port {port}: cannot listen there: {e.strerror} "
                            "(fix: pick another --port, or stop what is using it)") from None


def serve(experiment_dirs: list[Path], host: str = "127.0.0.1", port: int = 8765, store: str | None = None) -> None:
    """Serve the read-only dashboard on host:port until Ctrl-C (store: a store URL, as for `run`)."""
    import uvicorn

    from looplab.ui.app import create_app

    dirs = find_experiments(experiment_dirs)
    warning = host_warning(host)
    # Loopback: answer only loopback Host headers, so a rebinding web page cannot read the dashboard.
    app = create_app(dirs, allowed_hosts=None if warning is None else ["*"], store=store)
    _check_store(dirs, store)
    _check_port(host, port)
    if warning:
        print(warning, file=sys.stderr)
    print(f"looplab ui: {url(host, port)} ({len(dirs)} experiment{'s' if len(dirs) != 1 else ''}, "
          "read-only); Ctrl-C to stop", flush=True)
    uvicorn.run(app, host=host.strip("[]"), port=port, log_level="warning", timeout_graceful_shutdown=2)
