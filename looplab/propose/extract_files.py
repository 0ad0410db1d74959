"""Reply text → a new set of files for a files target (see looplab/filesets.py).

Each changed file comes as a fenced block whose path is named right before it (`### src/lib.rs`,
`src/lib.rs:`, `**src/lib.rs**`), in its info string (```rust src/lib.rs) or in a comment on its first
line (`// src/lib.rs`); or as SEARCH/REPLACE edits under a line naming the file. Files not mentioned
keep the incumbent's content. Only the target's files may be written.
"""

from __future__ import annotations

import re

from looplab import filesets
from looplab.propose.extract import EDIT, FENCE, ExtractError, apply_edits, code_blocks

PATHLIKE = re.compile(r"[\w][\w./-]*\.[A-Za-z0-9]+|[\w][\w./-]*/[\w.-]+")
_FILE_EDITS = re.compile(r"^[ \t>*_#`-]*(?:file:?\s*)?`?([\w][\w./-]*)`?[*_:` \t]*\n(?=<{5,9} SEARCH)", re.M | re.I)


def _named(text: str, allowed: list[str]) -> str | None:
    """The allowed path a header line or info string names; ExtractError when it names another file."""
    for token in PATHLIKE.findall(text):
        token = token.strip("./")
        if token in allowed:
            return token
        if "/" in token or "." in token.rsplit("/", 1)[-1]:
            raise ExtractError(f"the reply writes {token}, which is not one of the files you may change "
                               f"({', '.join(allowed)})")
    return None


def _path_of_block(reply: str, m: re.Match, allowed: list[str]) -> str | None:
    info = reply[m.start():reply.index("\n", m.start())]
    found = _named(info[3:], allowed)
    if found:
        return found
    before = reply[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
    found = _named(before, allowed) if before.strip() else None
    if found:
        return found
    first = m.group(2).split("\n", 1)[0]
    if re.match(r"^\s*(//|#|--|;|/\*|<!--)", first):
        return _named(first, allowed)
    return None


def extract_files(reply: str, *, allowed: list[str], incumbent: str) -> str:
    """The candidate: the incumbent's files with the reply's changes applied, packed."""
    files = filesets.unpack(incumbent)
    changed: set[str] = set()
    if EDIT.search(reply):
        spans = list(_FILE_EDITS.finditer(reply))
        if not spans:
            raise ExtractError("SEARCH/REPLACE edits must each follow a line naming the file they change")
        for i, m in enumerate(spans):
            path = _named(m.group(1), allowed) or m.group(1)
            if path not in allowed:
                raise ExtractError(f"the reply edits {path}, which is not one of the files you may change "
                                   f"({', '.join(allowed)})")
            end = spans[i + 1].start() if i + 1 < len(spans) else len(reply)
            files[path] = apply_edits(files[path], reply[m.end():end])
            changed.add(path)
    else:
        code_blocks(reply)  # raises on an unclosed block
        for m in FENCE.finditer(reply):
            path = _path_of_block(reply, m, allowed)
            if path is None and len(allowed) == 1:
                path = allowed[0]
            if path is None:
                raise ExtractError("a code block does not say which file it is; put the file's path on the "
                                   f"line right before each block (one of: {', '.join(allowed)})")
            if path in changed:
                raise ExtractError(f"{path} is given twice; send each file once")
            files[path] = m.group(2)
            changed.add(path)
    if not changed:
        raise ExtractError(f"no file in the reply; send each file you change in full, its path on the line "
                           f"before its code block (one of: {', '.join(allowed)})")
    try:
        return filesets.pack({p: files[p] for p in allowed})
    except filesets.FilesError as e:
        raise ExtractError(str(e)) from None
