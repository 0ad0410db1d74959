"""A real PostgreSQL server for tests: PostgreSQL's own initdb/pg_ctl into a temp dir, 127.0.0.1 only.

The server is installed with apt when missing and we are root. PostgreSQL refuses to run as root,
so as root the server runs as the `postgres` user (created when missing).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "postgres"


def _bin_dir() -> Path | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2].split(".")[0]))
    for d in reversed(dirs):
        if (Path(d) / "initdb").is_file():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def find_or_install() -> tuple[Path | None, str]:
    """(bin dir, "") or (None, why the server cannot be had)."""
    found = _bin_dir()
    if found is not None:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "PostgreSQL is not installed (fix: apt-get install postgresql)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0:
            return None, f"apt-get could not install postgresql: {r.stderr.strip()[-300:]}"
    found = _bin_dir()
    return (found, "") if found else (None, "postgresql installed but no initdb found")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl start on a free port; stop() removes everything."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="looplab-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            if subprocess.run(["id", SERVER_USER], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
            shutil.chown(self.dir, SERVER_USER)
            self._as = ["runuser", "-u", SERVER_USER, "--"]

    @property
    def url(self) -> str:
        return f"postgresql://looplab@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        r = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stdout[-500:]} {r.stderr[-500:]}")

    def start(self) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "looplab", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", opts,
                  "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
