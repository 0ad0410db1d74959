"""Static policy screen: reject a candidate before any build, naming the rule that fired.

The screen is the cheap first line; the sandbox and the harness are the real defences.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from looplab.experiment import ScreenConfig
from looplab.extract import BLOCK_START, outside_evolve_blocks, strip_c_comments_and_strings
from looplab.records import Outcome

# Always refused in C candidates: escapes from the sandbox contract, whatever the experiment says.
C_ALWAYS_FORBIDDEN = [
    "asm", "__asm__", "__asm", "syscall", "fork", "vfork", "clone", "system", "popen", "execve", "execv",
    "execvp", "execl", "execlp", "dlopen", "dlsym", "pthread_create", "thrd_create", "sigaction", "signal",
    "ptrace", "socket", "connect", "getenv", "environ", "atexit", "exit", "_exit", "abort",
]
# Always refused in Python candidates.
PY_ALWAYS_FORBIDDEN_IMPORTS = [
    "ctypes", "cffi", "subprocess", "multiprocessing", "threading", "socket", "os", "sys", "importlib",
    "builtins", "signal", "shutil", "pathlib", "inspect", "gc", "atexit", "pickle", "marshal", "resource",
]
PY_ALWAYS_FORBIDDEN_NAMES = [
    "eval", "exec", "compile", "__import__", "open", "globals", "breakpoint", "input", "vars", "setattr",
    "getattr", "delattr", "__builtins__", "__loader__", "__spec__",
]


@dataclass
class ScreenVerdict:
    outcome: Outcome  # SCREEN_REJECTED, or COMPILE_ERROR for Python syntax errors
    rule: str  # e.g. "forbidden identifier", "include not allowed", "max_bytes"
    reason: str


def screen(source: str, *, language: str, policy: ScreenConfig, baseline: str = "") -> ScreenVerdict | None:
    """None when the candidate passes; otherwise the first rule it breaks.

    baseline: when it marks an EVOLVE-BLOCK, code outside the markers must stay as it is.
    """
    if BLOCK_START in baseline and outside_evolve_blocks(source) != outside_evolve_blocks(baseline):
        return _reject("evolve-block", "changes code outside EVOLVE-BLOCK-START/END; edit only inside the markers")
    size = len(source.encode())
    if size > policy.max_bytes:
        return _reject("max_bytes", f"candidate is {size} bytes; the limit is {policy.max_bytes}")
    for pattern in policy.forbidden_patterns:
        if re.search(pattern, source, re.M):
            return _reject("forbidden pattern", f"matches forbidden pattern /{pattern}/")
    if language == "c":
        return _screen_c(source, policy)
    return _screen_python(source, policy)


def _reject(rule: str, reason: str) -> ScreenVerdict:
    return ScreenVerdict(Outcome.SCREEN_REJECTED, rule, reason)


def _screen_c(source: str, policy: ScreenConfig) -> ScreenVerdict | None:
    for m in re.finditer(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]', source, re.M):
        quote, header = m.group(1), m.group(2).strip()
        if quote == '"':
            return _reject("include not allowed", f'#include "{header}": local headers are not allowed')
        if policy.allowed_includes is not None and header not in policy.allowed_includes:
            allowed = ", ".join(f"<{h}>" for h in policy.allowed_includes)
            return _reject("include not allowed", f"#include <{header}> is not allowed (allowed: {allowed})")
    if re.search(r"^[ \t]*#[ \t]*(pragma[ \t]+omp|define[ \t]+\w+[ \t]+(asm|__asm__|syscall))", source, re.M):
        return _reject("forbidden directive", "OpenMP pragmas and macros hiding forbidden calls are not allowed")
    code = strip_c_comments_and_strings(source)
    for name in [*C_ALWAYS_FORBIDDEN, *policy.forbidden_identifiers]:
        if re.search(rf"(?<![\w.]){re.escape(name)}\b", code):
            return _reject("forbidden identifier", f"uses `{name}`, which is forbidden here")
    return None


def _screen_python(source: str, policy: ScreenConfig) -> ScreenVerdict | None:
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return ScreenVerdict(Outcome.COMPILE_ERROR, "syntax", f"SyntaxError: {e.msg} (line {e.lineno})")
    forbidden_names = set(PY_ALWAYS_FORBIDDEN_NAMES) | set(policy.forbidden_identifiers)
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] if node.level == 0 else ["." * node.level]
        for module in modules:
            verdict = _check_import(module, policy)
            if verdict:
                return verdict
        if isinstance(node, ast.Name) and node.id in forbidden_names:
            return _reject("forbidden identifier", f"uses `{node.id}`, which is forbidden here")
        if isinstance(node, ast.Attribute) and (node.attr in forbidden_names or node.attr.startswith("__")):
            if node.attr not in ("__init__", "__name__"):
                return _reject("forbidden identifier", f"uses attribute `{node.attr}`, which is forbidden here")
    return None


def _check_import(module: str, policy: ScreenConfig) -> ScreenVerdict | None:
    root = module.split(".")[0]
    if not root or root in PY_ALWAYS_FORBIDDEN_IMPORTS:
        return _reject("import not allowed", f"imports `{module or 'a relative module'}`, which is forbidden")
    if policy.allowed_imports is not None and root not in policy.allowed_imports:
        allowed = ", ".join(policy.allowed_imports) or "none"
        return _reject("import not allowed", f"imports `{module}`; allowed imports: {allowed}")
    return None
