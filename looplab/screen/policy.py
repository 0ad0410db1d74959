"""Static policy screen: reject a candidate before any build, naming the rule that fired.

The screen is the cheap first line, on the text the model wrote (line splices, trigraphs and
digraphs undone first). For C the real screen reads what the compiler reads (looplab/screen/compiler.py,
inside the build); the sandbox and the harness are the real defences.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from looplab import filesets
from looplab.config import ScreenConfig
from looplab.propose.extract import (
    BLOCK_END,
    BLOCK_START,
    outside_evolve_blocks,
    strip_c_comments_and_strings,
)
from looplab.records import Outcome

# Always refused in C candidates: escapes from the sandbox contract, whatever the experiment says.
C_ALWAYS_FORBIDDEN = [
    "syscall", "fork", "vfork", "clone", "system", "popen", "execve", "execv",
    "execvp", "execl", "execlp", "dlopen", "dlsym", "pthread_create", "thrd_create", "sigaction", "signal",
    "ptrace", "socket", "connect", "getenv", "environ", "__environ", "atexit", "exit", "_exit", "_Exit",
    "quick_exit", "abort", "dup2", "mprotect", "mmap", "setjmp", "longjmp",
    # builtins that read or leave the caller's frame, or make code from data
    "__builtin_frame_address", "__builtin_return_address", "__builtin_extract_return_addr",
    "__builtin_setjmp", "__builtin_longjmp", "__builtin_apply", "__builtin_apply_args", "__builtin_eh_return",
    "__builtin___clear_cache",
]
# Refused in C candidates unless [screen] allow_asm = true.
C_ASM = ["asm", "__asm__", "__asm"]
# Preprocessor probes of files (existence oracles): refused in the text, they leave no trace after -E.
C_FILE_PROBES = ["__has_include", "__has_include_next", "__has_embed"]
_TRIGRAPHS = {"=": "#", "(": "[", "/": "\\", ")": "]", "'": "^", "<": "{", "!": "|", ">": "}", "-": "~"}
_DIGRAPHS = [("%:%:", "##"), ("%:", "#"), ("<:", "["), (":>", "]"), ("<%", "{"), ("%>", "}")]
_COMMENT_OR_STRING = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(\w*)[ \t]*(.*)$", re.M)
# Always refused in Python candidates.
PY_ALWAYS_FORBIDDEN_IMPORTS = [
    "ctypes", "cffi", "subprocess", "multiprocessing", "threading", "socket", "os", "sys", "importlib",
    "builtins", "signal", "shutil", "pathlib", "inspect", "gc", "atexit", "pickle", "marshal", "resource",
]
PY_ALWAYS_FORBIDDEN_NAMES = [
    "eval", "exec", "compile", "__import__", "open", "globals", "breakpoint", "input", "vars", "setattr",
    "getattr", "delattr", "__builtins__", "__loader__", "__spec__",
    "attrgetter", "methodcaller",  # operator's getattr by name (a string can spell a dunder)
]


@dataclass
class ScreenVerdict:
    outcome: Outcome  # SCREEN_REJECTED, or COMPILE_ERROR for Python syntax errors
    rule: str  # e.g. "forbidden identifier", "include not allowed", "max_bytes"
    reason: str


def screen(source: str, *, language: str, policy: ScreenConfig, baseline: str = "") -> ScreenVerdict | None:
    """None when the candidate passes; otherwise the first rule it breaks.

    baseline: when it marks an EVOLVE-BLOCK, code outside the markers must stay as it is, and only the
    model's change is screened: the code inside the markers (what the starting program had outside them
    is not held against the candidate) and, in Python, only what the starting program's own block did not
    already do (an import or a name its author used there).
    """
    if source.startswith(filesets.FIRST_LINE):
        return _screen_files(source, policy, baseline)
    region = BLOCK_START in baseline
    if region and outside_evolve_blocks(source) != outside_evolve_blocks(baseline):
        return _reject("evolve-block", "changes code outside EVOLVE-BLOCK-START/END; edit only inside the markers")
    size = len(source.encode())
    if size > policy.max_bytes:
        return _reject("max_bytes", f"candidate is {size} bytes; the limit is {policy.max_bytes}")
    judged = inside_blocks(source) if region else source
    for pattern in policy.forbidden_patterns:
        if re.search(pattern, judged, re.M):
            return _reject("forbidden pattern", f"matches forbidden pattern /{pattern}/")
    if language == "c":
        return _screen_c(judged, policy)
    if language == "python":
        if not region:
            return _screen_python(source, policy)
        return _screen_python(source, policy, lines=block_lines(source),
                              tolerated=_python_findings_of(baseline, policy))
    return None  # other languages: the language-neutral rules above, then the build and the harness


_BY_SUFFIX = {".c": "c", ".h": "c", ".py": "python"}


def _screen_files(source: str, policy: ScreenConfig, baseline: str) -> ScreenVerdict | None:
    """A files target: the size over all files, then each file the model changed by the rules of its
    own language (a file as the starting program had it is not held against the candidate)."""
    try:
        files = filesets.unpack(source)
        started = filesets.unpack(baseline) if baseline.startswith(filesets.FIRST_LINE) else {}
    except filesets.FilesError as e:
        return _reject("files", str(e))
    size = len(source.encode())
    if size > policy.max_bytes:
        return _reject("max_bytes", f"the files are {size} bytes together; the limit is {policy.max_bytes}")
    for path, text in files.items():
        if started.get(path) == text:
            continue
        verdict = screen(text, language=_BY_SUFFIX.get(Path(path).suffix, "text"), policy=policy)
        if verdict is not None:
            verdict.reason = f"{path}: {verdict.reason}"
            return verdict
    return None


def block_lines(source: str) -> set[int]:
    """Line numbers (1-based) strictly between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END markers."""
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), 1):
        if BLOCK_START in line:
            inside = True
        elif BLOCK_END in line:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def inside_blocks(source: str) -> str:
    """The source with every line outside the EVOLVE-BLOCKs (markers included) blanked: line numbers hold."""
    keep = block_lines(source)
    return "\n".join(line if n in keep else "" for n, line in enumerate(source.splitlines(), 1))


def _reject(rule: str, reason: str) -> ScreenVerdict:
    return ScreenVerdict(Outcome.SCREEN_REJECTED, rule, reason)


def _screen_c(source: str, policy: ScreenConfig) -> ScreenVerdict | None:
    text = normalise_c(source)
    for pattern in policy.forbidden_patterns:
        if re.search(pattern, text, re.M):
            return _reject("forbidden pattern", f"matches forbidden pattern /{pattern}/")
    verdict = c_directive_problem(text, policy, includes=True)
    if verdict:
        return verdict
    if re.search(r"^[ \t]*#[ \t]*define[ \t]+\w+[ \t]+(asm|__asm__|__asm|syscall)\b", text, re.M):
        return _reject("forbidden directive", "macros hiding forbidden calls are not allowed")
    code = strip_c_comments_and_strings(text)
    for name in [*forbidden_c_identifiers(policy), *C_FILE_PROBES]:
        if re.search(rf"(?<![\w.]){re.escape(name)}\b", code):
            return _reject("forbidden identifier", f"uses `{name}`, which is forbidden here")
    return None


def forbidden_c_identifiers(policy: ScreenConfig) -> list[str]:
    """What a C candidate may not name: the fixed list, asm unless allowed, and the experiment's own."""
    return [*C_ALWAYS_FORBIDDEN, *([] if policy.allow_asm else C_ASM), *policy.forbidden_identifiers]


def normalise_c(source: str) -> str:
    """The text as the preprocessor tokenises it: trigraphs replaced, line splices joined (the lost
    newlines are added after the joined line, so line numbers hold), digraphs spelled out."""
    text = source.replace("\r\n", "\n")
    text = re.sub(r"\?\?([=(/)'<!>-])", lambda m: _TRIGRAPHS[m.group(1)], text)
    out: list[str] = []
    pending = 0
    for line in text.split("\n"):
        stripped = line.rstrip(" \t")
        if stripped.endswith("\\"):
            out.append(stripped[:-1])
            pending += 1
            continue
        out.append(line + "\n" * pending + "\n")
        pending = 0
    text = "".join(out)[:-1] if out else ""
    for digraph, spelled in _DIGRAPHS:
        text = text.replace(digraph, spelled)
    return text


def strip_c_comments(text: str) -> str:
    """Comments become a space (or the newlines they held); string literals stay."""
    def repl(m: re.Match) -> str:
        t = m.group(0)
        return t if t[0] in "\"'" else ("\n" * t.count("\n") or " ")
    return _COMMENT_OR_STRING.sub(repl, text)


def c_directive_problem(text: str, policy: ScreenConfig, *, includes: bool) -> ScreenVerdict | None:
    """Directives in normalise_c() text: #line and GNU line markers (they forge the file name the
    compiler reports), #embed, denied pragmas, and (includes=True) the textual include rules."""
    text = strip_c_comments(text)
    macro = ""  # the first macro the candidate defined so far (feature-test macros aside)
    for m in DIRECTIVE.finditer(text):
        name, rest = m.group(1), m.group(2).strip()
        if name in ("define", "undef") and not macro and not _FEATURE_MACRO.match(rest):
            macro = f"#{name} {rest.split('(')[0].split()[0] if rest.split() else ''}"
        if includes and name in ("include", "include_next", "import"):
            verdict = _include_problem(name, rest, policy)
            if verdict:
                return verdict
        if name in ("include", "include_next", "import") and macro:
            return _reject("macro before include", f"`{macro}` comes before `#{name} {rest}`: a candidate's macros "
                           "may not reach into the headers; define them after the last #include")
        if name == "line" or name[:1].isdigit():
            return _reject("forbidden directive", f"`#{name} {rest}`: #line directives and line markers are not allowed")
        if name == "embed":
            return _reject("forbidden directive", "#embed is not allowed")
        if name == "pragma" and (why := pragma_problem(rest)):
            return _reject("forbidden directive", why)
    for m in re.finditer(r'(?<![\w.])_Pragma\s*\(\s*L?"((?:\\.|[^"\\\n])*)"', text):
        why = pragma_problem(m.group(1).replace('\\"', '"').replace("\\\\", "\\"))
        if why:
            return _reject("forbidden directive", why)
    return None


# Feature-test macros, empty or a number, select among a header's own variants: fine before includes.
_FEATURE_MACRO = re.compile(r"(_GNU_SOURCE|_DEFAULT_SOURCE|_BSD_SOURCE|_SVID_SOURCE|_XOPEN_SOURCE(_EXTENDED)?|"
                            r"_POSIX_C_SOURCE|_POSIX_SOURCE|_ISOC\w*_SOURCE|_USE_MATH_DEFINES|_FILE_OFFSET_BITS|"
                            r"_TIME_BITS|_LARGEFILE64_SOURCE|__STDC_WANT_\w+|_FORTIFY_SOURCE|NDEBUG)(\s+\(?\d+L?\)?)?\s*$")
_DENIED_PRAGMAS = re.compile(r"^(omp|weak|redefine_extname|GCC\s+(system_header|dependency|pch_preprocess))\b")


def pragma_problem(pragma: str) -> str | None:
    """Why a `#pragma` (its text after the word pragma) is refused, or None."""
    m = _DENIED_PRAGMAS.match(pragma.strip())
    if m:
        return (f"uses `#pragma {m.group(0)}`, which a candidate may not use "
                "(OpenMP, weak symbols, renamed externals, system headers and file probes)")
    return None


def _include_problem(name: str, rest: str, policy: ScreenConfig) -> ScreenVerdict | None:
    m = re.match(r'([<"])([^>"]*)[>"]', rest)
    if not m:
        return _reject("include not allowed", f"`#{name} {rest}`: computed includes are not allowed; "
                       "write #include <header.h>")
    quote, header = m.group(1), m.group(2).strip()
    if quote == '"':
        return _reject("include not allowed", f'#{name} "{header}": local headers are not allowed')
    if header.startswith("/") or ".." in header.split("/"):
        return _reject("include not allowed", f"#{name} <{header}>: only system headers by their name")
    if policy.allowed_includes is not None and header not in policy.allowed_includes:
        allowed = ", ".join(f"<{h}>" for h in policy.allowed_includes)
        return _reject("include not allowed", f"#include <{header}> is not allowed (allowed: {allowed})")
    return None


def _screen_python(source: str, policy: ScreenConfig, *, lines: set[int] | None = None,
                   tolerated: frozenset[tuple[str, str]] = frozenset()) -> ScreenVerdict | None:
    """The first rule the code breaks on `lines` (all when None) that is not `tolerated`."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return ScreenVerdict(Outcome.COMPILE_ERROR, "syntax", f"SyntaxError: {e.msg} (line {e.lineno})")
    return next((v for v in _python_findings(tree, policy, lines) if (v.rule, v.reason) not in tolerated), None)


_BASELINE_FINDINGS: dict[tuple[str, int], tuple[ScreenConfig, frozenset[tuple[str, str]]]] = {}


def _python_findings_of(baseline: str, policy: ScreenConfig) -> frozenset[tuple[str, str]]:
    """What the starting program's own EVOLVE-BLOCK already does that the screen would refuse (read once
    per baseline and policy: every candidate of a run asks)."""
    hit = _BASELINE_FINDINGS.get((baseline, id(policy)))
    if hit is not None and hit[0] is policy:
        return hit[1]
    try:
        tree = ast.parse(baseline)
    except SyntaxError:
        return frozenset()
    found = frozenset((v.rule, v.reason) for v in _python_findings(tree, policy, block_lines(baseline)))
    if len(_BASELINE_FINDINGS) >= 32:
        _BASELINE_FINDINGS.clear()
    _BASELINE_FINDINGS[(baseline, id(policy))] = (policy, found)
    return found


def _python_findings(tree: ast.AST, policy: ScreenConfig, lines: set[int] | None):
    forbidden_names = set(PY_ALWAYS_FORBIDDEN_NAMES) | set(policy.forbidden_identifiers)
    for node in ast.walk(tree):
        if lines is not None and getattr(node, "lineno", None) not in lines:
            continue
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] if node.level == 0 else ["." * node.level]
        for module in modules:
            verdict = _check_import(module, policy)
            if verdict:
                yield verdict
        if isinstance(node, ast.Name) and node.id in forbidden_names:
            yield _reject("forbidden identifier", f"uses `{node.id}`, which is forbidden here")
        attrs = [node.attr] if isinstance(node, ast.Attribute) else []
        if isinstance(node, ast.MatchClass):  # `case object(__class__=c)` reads an attribute too
            attrs = list(node.kwd_attrs)
        for attr in attrs:
            if (attr in forbidden_names or attr.startswith("__")) and attr not in ("__init__", "__name__"):
                yield _reject("forbidden identifier", f"uses attribute `{attr}`, which is forbidden here")


def _check_import(module: str, policy: ScreenConfig) -> ScreenVerdict | None:
    root = module.split(".")[0]
    if not root or root in PY_ALWAYS_FORBIDDEN_IMPORTS:
        return _reject("import not allowed", f"imports `{module or 'a relative module'}`, which is forbidden")
    if policy.allowed_imports is not None and root not in policy.allowed_imports:
        allowed = ", ".join(policy.allowed_imports) or "none"
        return _reject("import not allowed", f"imports `{module}`; allowed imports: {allowed}")
    return None
