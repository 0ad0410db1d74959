"""The harness library experiments build on: a trusted supervisor and a confined worker.

C harnesses include `looplab.h` from `{looplab_include}` and link the library's supervisor or
worker source; Python harnesses run under `{python}` and import `looplab.harness.py`.
Both placeholders are filled by looplab in build and evaluate commands (see placeholders()).
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import cache
from pathlib import Path

C_DIR = Path(__file__).parent / "c"
PACKAGE_DIR = Path(__file__).parent


def placeholders() -> dict[str, str]:
    """The library's placeholders for build and evaluate commands."""
    return {"looplab_include": str(C_DIR), "python": sys.executable}


def python_paths() -> list[Path]:
    """What a Python process under {python} needs to read: the interpreter's prefixes, its installed
    packages and looplab itself — not every sys.path entry (a script's own folder, say /tmp, would be
    bound over the sandbox's private /tmp and show the host's files to candidates)."""
    prefixes = {Path(sys.prefix), Path(sys.base_prefix)}
    paths = prefixes | {PACKAGE_DIR.parent}  # looplab's package, wherever an editable install keeps it
    for p in sys.path:
        path = Path(p) if p and os.path.isdir(p) else None
        if path and (path.name in ("site-packages", "dist-packages") or any(path.is_relative_to(x) for x in prefixes)):
            paths.add(path)
    return sorted(paths)


@cache
def fingerprint() -> str:
    """Hash of the library's own sources: a build that used them is stale when they change."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE_DIR.rglob("*")):
        if p.is_file() and p.suffix in (".h", ".c", ".py"):
            h.update(str(p.relative_to(PACKAGE_DIR)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def readonly_paths(command: str) -> list[Path]:
    """What the sandbox must let a command read for the library placeholders it uses."""
    paths: list[Path] = []
    if "{looplab_include}" in command:
        paths.append(C_DIR)
    if "{python}" in command:
        paths += python_paths()
    return paths
