"""`looplab new NAME --lang c|python [--kind function|score|files]`: a runnable experiment from the templates.

The new experiment passes `looplab eval NAME NAME/naive.*` as created; the user then replaces
the example target (a prefix sum in C, a longest-increasing-subsequence in Python).
"""

from __future__ import annotations

import keyword
import re
import shutil
from pathlib import Path

from looplab.errors import UserError

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("c", "python")
KINDS = ("function", "score", "files")
PLACEHOLDERS = ("__NAME__", "__FUNC__")

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_C_KEYWORDS = set(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while "
    "_Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local".split()
)
# A target with a libc or harness-library name would replace that function inside the worker.
_RESERVED = {
    "main", "abs", "exit", "free", "malloc", "calloc", "realloc", "memcpy", "memset", "memcmp", "memmove",
    "printf", "puts", "strcmp", "strlen", "sqrt", "exp", "log", "pow", "sin", "cos", "time", "clock",
    "open", "close", "read", "write", "dup", "dup2", "fopen", "fflush", "qsort", "rand", "isfinite",
}


def function_name(name: str, lang: str) -> str:
    """The target's identifier for experiment NAME: dashes become underscores."""
    func = name.replace("-", "_")
    if lang == "c" and (func in _C_KEYWORDS or func in _RESERVED or func.lower().startswith("ll_")):
        raise UserError(f"looplab new {name}: '{func}' is a C keyword or a library name (fix: choose another NAME)")
    if lang == "python" and (keyword.iskeyword(func) or keyword.issoftkeyword(func)):
        raise UserError(f"looplab new {name}: '{func}' is a Python keyword (fix: choose another NAME)")
    return func


def scaffold(name: str, lang: str, dest_parent: Path, kind: str = "function") -> Path:
    """Create dest_parent/NAME as a runnable experiment and return its path.

    kind: "function" (a C or Python function, timed), "score" (a marked region of a Python program
    whose output the harness scores) or "files" (two whole Python files, the same score).
    """
    if kind not in KINDS:
        raise UserError(f"looplab new: --kind {kind!r} is not supported (fix: use one of {', '.join(KINDS)})")
    if kind != "function" and lang != "python":
        raise UserError(f"looplab new: --kind {kind} comes in Python (fix: add --lang python)")
    if lang not in LANGUAGES:
        raise UserError(f"looplab new: --lang {lang!r} is not supported (fix: use --lang c or --lang python)")
    if not _NAME.fullmatch(name):
        raise UserError(
            f"looplab new {name}: NAME must start with a letter and hold only letters, digits, '-' and '_' "
            "(at most 64) (fix: choose another NAME)"
        )
    func = function_name(name, lang)
    dest = Path(dest_parent) / name
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"{dest}: already exists and is not empty (fix: choose another NAME or remove it)")
    source = TEMPLATES / (lang if kind == "function" else kind)
    if not (source / "experiment.toml").is_file():
        raise UserError(f"{source}: the {lang} template is missing from this looplab install (fix: reinstall looplab)")
    files = [(p, p.relative_to(source)) for p in sorted(source.rglob("*"))]
    if kind == "files":  # the same scoring harness as the score kind
        files.append((TEMPLATES / "score" / "harness" / "score.py", Path("harness") / "score.py"))
    for path, relative in files:
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text()
        for placeholder, value in zip(PLACEHOLDERS, (name, func), strict=True):
            text = text.replace(placeholder, value)
        target.write_text(text)
        shutil.copymode(path, target)
    return dest
