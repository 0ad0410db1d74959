"""What travels to a remote worker: the experiment folder as a tarball, and how a worker unpacks it.

Packed: every file of the experiment folder (experiment.toml, the baseline, harness/, EXPERIMENT.md,
hooks, data files) except what looplab/layout.py names as generated: looplab's own state and renderings (.looplab/, runs/,
winners/, .git/, SCORES.*, MEMORY.*, report.html, incumbent.*) and caches (__pycache__, *.pyc). Entries are sorted
and stripped of owners and times, so the same files always give the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import secrets
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from looplab.errors import UserError
from looplab.layout import is_generated

MAX_BUNDLE_BYTES = 256 << 20  # beyond this, data belongs on storage every node mounts
KEEP_UNUSED_S = 24 * 3600  # a worker drops unpacked experiments (and their builds) unused this long


def pack(root: Path) -> tuple[bytes, str]:
    """(tar.gz bytes of the experiment folder, sha256 digest). The top folder keeps its name."""
    root = Path(root).resolve()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not is_generated(d))
            rel_dir = Path(dirpath).relative_to(root)
            for name in sorted(filenames):
                if is_generated(name):
                    continue
                path = Path(dirpath) / name
                info = tar.gettarinfo(str(path), arcname=str(Path(root.name) / rel_dir / name))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o755 if info.mode & 0o111 else 0o644  # the same files under any umask: same digest
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                if buf.tell() > MAX_BUNDLE_BYTES:
                    raise UserError(
                        f"{root}: more than {MAX_BUNDLE_BYTES >> 20} MB to send to the workers (fix: keep large "
                        "data on storage every node mounts and name it by absolute path in the harness)")
    data = gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)  # no timestamp: same files, same digest
    return data, hashlib.sha256(data).hexdigest()


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "looplab-ray"


def unpack(data: bytes, digest: str, name: str) -> Path:
    """The experiment folder for this bundle on this node, unpacked once and reused (with its build cache)."""
    home = cache_root() / digest
    root = home / name
    if root.is_dir():
        os.utime(home)  # in use: keep it
        return root
    home.parent.mkdir(parents=True, exist_ok=True)
    _prune(home.parent)
    tmp = home.parent / f"{digest}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(tmp, filter="data")  # no absolute paths, no escapes, no devices
    try:
        os.rename(tmp, home)  # several tasks may unpack at once: the first rename wins
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    if not root.is_dir():
        raise RuntimeError(f"{home}: holds no {name}/ (remove the folder; it is a cache)")
    return root


def _prune(cache: Path) -> None:
    """Remove unpacked experiments nobody used for KEEP_UNUSED_S (never one in use: it is touched)."""
    cutoff = time.time() - KEEP_UNUSED_S
    for old in cache.iterdir():
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue  # another worker pruned it first
