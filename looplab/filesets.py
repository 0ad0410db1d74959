"""A candidate that is several whole files: one text in the store, a folder of files on disk.

A `files` target ([target] files = ["src/lib.rs", ...]) lets the model rewrite whole files. Everything
that keeps, hashes or compares candidates works on one text, so a set of files is packed into one:

    --- looplab file: src/lib.rs ---
    <its content>
    --- looplab file: src/sort.rs ---
    <its content>

On disk (the build's workspace, runs/, incumbent.files/, winners/<commit>.files/) it is the folder of
those files at their paths.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path, PurePosixPath

HEADER = re.compile(r"^--- looplab file: (.+?) ---$", re.M)
FIRST_LINE = "--- looplab file: "  # how a packed set of files begins


class FilesError(ValueError):
    """A packed set of files that cannot be unpacked safely (the message says why)."""


def pack(files: dict[str, str]) -> str:
    """Files (path → content) as one text, in the given order; every content ends with a newline."""
    parts = []
    for path, content in files.items():
        if HEADER.search(content):
            raise FilesError(f"{path}: holds a line that looks like looplab's file separator")
        parts.append(f"--- looplab file: {path} ---\n{content if content.endswith(chr(10)) else content + chr(10)}")
    return "".join(parts)


def unpack(text: str) -> dict[str, str]:
    """path → content; raises FilesError on a malformed text or an unsafe path."""
    heads = list(HEADER.finditer(text))
    if not heads or text[:heads[0].start()].strip():
        raise FilesError("not a set of files (no '--- looplab file: PATH ---' header first)")
    files: dict[str, str] = {}
    for i, m in enumerate(heads):
        path = safe_path(m.group(1))
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        if path in files:
            raise FilesError(f"{path}: appears twice")
        files[path] = text[m.end() + 1:end]
    return files


def safe_path(path: str) -> str:
    """A relative path inside the workspace, normalised; FilesError for absolute paths or '..'."""
    p = PurePosixPath(path.strip())
    if not path.strip() or p.is_absolute() or ".." in p.parts or str(p).startswith("."):
        raise FilesError(f"{path!r}: not a relative path inside the experiment")
    return str(p)


def write_tree(folder: Path, text: str) -> None:
    """Write the files under folder (created), each atomically."""
    for path, content in unpack(text).items():
        dest = folder / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, content)


def read_tree(folder: Path, paths: list[str]) -> str:
    """The files at `paths` under folder, packed (a missing one raises FileNotFoundError)."""
    return pack({p: (folder / p).read_text() for p in paths})


def replace_tree(folder: Path, text: str) -> None:
    """folder holds exactly these files afterwards: built beside it, then swapped in."""
    tmp = folder.with_name(f".{folder.name}.new")
    old = folder.with_name(f".{folder.name}.old")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    write_tree(tmp, text)
    if folder.exists():
        os.rename(folder, old)
    os.rename(tmp, folder)
    if old.exists():
        shutil.rmtree(old)


def save(path: Path, text: str, *, as_files: bool) -> None:
    """A candidate on disk: one file, or (a files target) a folder of files."""
    if as_files:
        replace_tree(path, text)
        return
    write_atomic(path, text)


def write_atomic(path: Path, text: str, *, encoding: str | None = None) -> None:
    """Write a file so readers never see half of it and a failed write leaves no temporary behind.

    looplab's one atomic writer: every file it rewrites in place goes through here."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # several loops may write at once
    try:
        tmp.write_text(text, encoding=encoding)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temporaries behind
        raise


def load(path: Path, *, as_files: bool) -> str:
    """What save() wrote (a folder is read back in sorted path order)."""
    if not as_files:
        return path.read_text()
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    return read_tree(path, files)
