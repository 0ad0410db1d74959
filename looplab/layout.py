"""The names looplab writes in an experiment folder: one list, read by everything that writes, skips or hides them.

    .looplab/         the store (looplab.db), build cache, warm hosts' jobs, the git note (git.json)
    runs/<attempt>/   prompt.md, response.md, candidate.<ext>, result.json
    SCORES.json  SCORES.md  MEMORY.json  MEMORY.md  report.html
    incumbent.<ext>   the live best (a folder, incumbent.files/, for a files target)
    winners/<commit>.<ext>   kept across seeds
"""

from __future__ import annotations

STATE_DIR = ".looplab"
STORE_FILE = "looplab.db"  # in STATE_DIR
GIT_NOTE = "git.json"  # in STATE_DIR: the git looplab runs now (archive/git_lock.py)
RUNS_DIR = "runs"
RESULT_FILE = "result.json"  # in runs/<attempt>/
WINNERS_DIR = "winners"
SCORES_JSON, SCORES_MD = "SCORES.json", "SCORES.md"
MEMORY_JSON, MEMORY_MD = "MEMORY.json", "MEMORY.md"
REPORT_HTML = "report.html"
INCUMBENT = "incumbent"  # incumbent.<ext>

RENDERINGS = (SCORES_JSON, SCORES_MD, MEMORY_JSON, MEMORY_MD)  # committed beside incumbent.<ext>
LIVE_FILES = RENDERINGS + (REPORT_HTML,)  # regenerated renderings `looplab seed` deletes
# Written by looplab (or git, or Python) itself: never part of what a build depends on or a worker receives.
GENERATED = frozenset({STATE_DIR, RUNS_DIR, WINNERS_DIR, ".git", "__pycache__", *LIVE_FILES})


def incumbent_name(ext: str) -> str:
    return f"{INCUMBENT}.{ext}"


def is_generated(name: str) -> bool:
    """A file or folder name, at any depth, that is looplab's own state, a rendering, a temporary or a cache."""
    return name in GENERATED or name.startswith(f"{INCUMBENT}.") or name.endswith((".pyc", ".tmp"))
