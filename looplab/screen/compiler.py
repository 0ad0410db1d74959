"""The C screen that reads what the compiler reads, run inside the sandboxed build.

script() is one shell script for the sandbox: it preprocesses the candidate with the flags of the
build's own compile of {candidate}, its path and the build's fixed time (`-E -H`, the file probes
poisoned), compiles it alone (`-c`) and lists the object (`nm`, `readelf`, `objdump`).
problem() then reads what that left in the build directory:

1. includes: each direct include of the candidate (depth 1 of the -H tree) is a system header (under
   the compiler's own include dirs) whose name is in [screen] allowed_includes, when that is set;
2. text: no #line or line marker (they would forge the file name below), #embed, denied pragma,
   macro before an #include or file probe (__has_include: also poisoned, so no spelling gets through,
   since it could pick other code in the build than here), read as the preprocessor tokenises it;
3. tokens: the candidate's own lines of the preprocessed source (found by the line markers, so token
   pasting and digraphs are seen through) name no forbidden identifier, no asm unless allow_asm, no
   denied pragma;
4. object (looplab/screen/objects.py): it exports only the target, has no load-time code, home-made
   section, IFUNC symbol, executable data or stack, or system call instruction, and imports only
   allowed symbols.

A reason names only what the candidate wrote; diagnostics() keeps compiler messages about the
candidate and drops what other files would show. This is a filter, not the defence: the worker's
seccomp allowlist is.
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
from pathlib import Path

from looplab.config import Experiment, ScreenConfig
from looplab.propose.extract import strip_c_comments_and_strings
from looplab.records import Outcome
from looplab.screen.objects import SYSCALL_INSN, Finding, object_problem
from looplab.screen.policy import (
    C_ASM,
    C_FILE_PROBES,
    DIRECTIVE,
    c_directive_problem,
    forbidden_c_identifiers,
    normalise_c,
    pragma_problem,
    strip_c_comments,
)

# The policy part (includes, text, tokens, imports). Defence-in-depth tests (tests/test_hostile.py)
# switch it off to see the sandbox and the harness stop on their own what the screen would refuse;
# exports, load-time code and executable data stay checked either way.
ENFORCE_POLICY = True
CANDIDATE = "candidate.c"  # the candidate's usual name in the build directory, as the compiler reports it
FILES = ("screen.sys", "screen.H", "screen.i", "screen.o", "screen.cc", "screen.rc", "screen.obj", "screen.poison.h",
         "screen.dis")
# Prefixed to the screen and to the build's command: both compile at the same fixed __DATE__/__TIME__.
BUILD_ENV = "export SOURCE_DATE_EPOCH=0;"
DEFAULT_SYSTEM_DIRS = ("/usr/include", "/usr/lib/gcc", "/usr/local/include")
_COMPILER = re.compile(r"^(.*/)?(cc|gcc|clang|icx|icc)(-[\d.]+)?$")
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_PAIRED_KEEP = {"-I", "-D", "-U", "-include", "-imacros", "-isystem", "-iquote", "-idirafter", "-x",
                "--param", "-Xpreprocessor", "-iprefix", "-iwithprefix", "--sysroot"}
_PAIRED_DROP = {"-o", "-MF", "-MT", "-MQ", "-L", "-l", "-Xlinker", "-Xassembler", "-T", "-u", "-z", "-e"}
_DROP = re.compile(r"^(-c|-S|-E|-M[MDGP]*|-o.+|-l.+|-L.+|-Wl,.*|-Wa,.*|-W.*|-w|-shared|-static.*|-pie|-no-pie|"
                   r"-rdynamic|-s|-v|-H|-pipe|-save-temps.*|-fsyntax-only|-f(no-)?(fat-)?lto.*)$")
_MARKER = re.compile(r'^# (\d+) "((?:\\.|[^"\\])*)"((?: \d+)*)\s*$')
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_ASM_FILE_READ = re.compile(r"\.(incbin|include)\b", re.I)


def compile_flags(command: str, values: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """(compiler, flags, forced includes) of the build's invocation that compiles {candidate}, with
    placeholders filled and outputs, inputs, link and warning flags dropped."""
    lex = shlex.shlex(command, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError:
        tokens = []
    invocations: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _SEPARATORS:
            invocations.append([])
        else:
            invocations[-1].append(tok)
    chosen = next((inv for inv in invocations if any("{candidate}" in t for t in inv)), [])
    start = next((i for i, t in enumerate(chosen) if _COMPILER.match(t)), None)
    if start is None:
        return "cc", [], []
    flags: list[str] = []
    forced: list[str] = []
    args = [_fill(t, values) for t in chosen[start + 1:]]
    i = 0
    while i < len(args):
        tok = args[i]
        if tok in _PAIRED_KEEP and i + 1 < len(args):
            flags += [tok, args[i + 1]]
            if tok in ("-include", "-imacros"):
                forced.append(args[i + 1])
            i += 2
            continue
        if tok in _PAIRED_DROP:
            i += 2
            continue
        if tok.startswith("-") and not _DROP.match(tok):
            flags.append(tok)
            if tok.startswith("-include") and len(tok) > 8:
                forced.append(tok[8:])
        i += 1
    return _fill(chosen[start], values), flags, forced


def _fill(token: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        token = token.replace("{" + key + "}", value)
    return token


def script(cc: str, flags: list[str], path: str) -> str:
    """The sandboxed shell script, run in the build directory; always exits 0. The candidate is
    compiled by its own path (the build's {candidate}: same __FILE__) at the build's fixed time
    (BUILD_ENV: same __DATE__/__TIME__); the preprocessing pass has the file probes poisoned, to catch
    a candidate that would test the file system (__has_include) to compile differently here."""
    q = shlex.quote
    cmd = " ".join(map(q, [cc, *flags, "-fno-lto", "-w"]))
    source = "-x c " + q(path)
    return (f"{BUILD_ENV} printf '#pragma GCC poison {' '.join(C_FILE_PROBES)}\\n' > screen.poison.h; "
            f"{q(cc)} -E -v -x c /dev/null -o /dev/null 2> screen.sys; "
            f"{cmd} -E -H -include screen.poison.h {source} -o screen.i 2> screen.H; "
            f"{cmd} -c {source} -o screen.o 2> screen.cc; echo $? > screen.rc; "
            "[ -f screen.o ] && { nm -u -P screen.o || echo @@failed; echo @@defined; "
            "nm -g --defined-only -P screen.o || echo @@failed; echo @@sections; readelf -SW screen.o || echo @@failed; "
            "echo @@symbols; readelf -sW screen.o || echo @@failed; echo @@code; "
            "objdump -d --no-show-raw-insn screen.o > screen.dis || echo @@failed; "
            f"grep -wE {q(SYSCALL_INSN)} screen.dis | head -n 1; }} > screen.obj; exit 0")


def problem(exp: Experiment, build_dir: Path, source: str, forced: list[str],
            path: str) -> tuple[Finding | None, str]:
    """(the first rule the candidate breaks or its compile error, or None; the compile log to keep).
    Removes the screen's files from the build directory."""
    read = {f: _read(build_dir / f) for f in FILES if f not in ("screen.o", "screen.dis")}
    for f in FILES:
        (build_dir / f).unlink(missing_ok=True)
    system = system_dirs(read["screen.sys"])
    policy = exp.config.screen
    own, include_lines = own_lines(read["screen.i"], path)
    log = diagnostics(read["screen.cc"], build_dir, system, Path(path).name)
    if ENFORCE_POLICY:
        finding = (_include_problem(read["screen.H"], include_lines, source, policy, system, build_dir,
                                    [*forced, "screen.poison.h"])
                   or _text_problem(source, policy) or _probe_problem(read["screen.H"], path, source)
                   or _token_problem(own, policy))
        if finding:
            return finding, log
        if read["screen.rc"].strip() == "0" and not own and source.strip():  # fail closed, never open
            return Finding(Outcome.INFRA_ERROR, "the compiler screen found none of the candidate's lines in its "
                           "preprocessed source (a build flag such as -P?)"), log
    if read["screen.rc"].strip() != "0" or not read["screen.obj"]:
        return Finding(Outcome.COMPILE_ERROR, first_errors(log)), log
    return object_problem(read["screen.obj"], exp.target, policy, imports=ENFORCE_POLICY), log


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def system_dirs(verbose: str) -> list[str]:
    """The compiler's own <...> search dirs from `cc -E -v` (defaults when it said nothing)."""
    m = re.search(r"#include <\.\.\.> search starts here:\n(.*?)\nEnd of search list", verbose, re.S)
    dirs = [os.path.normpath(line.split(" (")[0].strip()) for line in (m.group(1).splitlines() if m else [])]
    return [d for d in dirs if d.startswith("/")] or list(DEFAULT_SYSTEM_DIRS)


def _system_name(path: str, system: list[str]) -> str | None:
    """The header's name relative to the deepest system dir holding it, or None."""
    best = max((d for d in system if path.startswith(d.rstrip("/") + "/")), key=len, default=None)
    return path[len(best.rstrip("/")) + 1:] if best else None


def own_lines(preprocessed: str, name: str = CANDIDATE) -> tuple[list[tuple[int, str]], list[int]]:
    """(the candidate's own lines with their line numbers, the candidate lines that entered an include)."""
    own: list[tuple[int, str]] = []
    includes: list[int] = []
    file, line = "", 0
    for text in preprocessed.splitlines():
        m = _MARKER.match(text)
        if m:
            flags = m.group(3).split()
            if "1" in flags and file == name:
                includes.append(line)
            file, line = re.sub(r"\\(.)", r"\1", m.group(2)), int(m.group(1))
            continue
        if file == name:
            own.append((line, text))
        line += 1
    return own, includes


def _include_problem(tree: str, include_lines: list[int], source: str, policy: ScreenConfig, system: list[str],
                     build_dir: Path, forced: list[str]) -> Finding | None:
    skip = {os.path.normpath(build_dir / f) for f in forced}
    direct = [os.path.normpath(build_dir / m.group(1)) for m in re.finditer(r"^\. (\S.*)$", tree, re.M)]
    direct = [p for p in direct if p not in skip and _system_name(p, system) != "stdc-predef.h"]
    src_lines = normalise_c(source).split("\n")
    if len(include_lines) != len(direct):  # no preprocessed output (it failed): the directives as written
        text = strip_c_comments(normalise_c(source))
        include_lines = [text.count("\n", 0, m.start()) + 1 for m in DIRECTIVE.finditer(text)
                         if m.group(1) in ("include", "include_next", "import")]
    lines: list[int | None] = list(include_lines) if len(include_lines) == len(direct) else [None] * len(direct)
    for full, line in zip(direct, lines, strict=True):
        name = _system_name(full, system)
        wrote = "an #include"
        if line is not None and 0 < line <= len(src_lines):
            while line > 1 and not src_lines[line - 1].strip():  # a spliced directive sits on its first line
                line -= 1
            wrote = f"line {line} (`{src_lines[line - 1].strip()[:120]}`)"
        if name is None:
            allowed = "only system headers may be included"
            if policy.allowed_includes is not None:
                allowed += " (allowed: " + ", ".join(f"<{h}>" for h in policy.allowed_includes) + ")"
            return Finding(Outcome.SCREEN_REJECTED, f"{wrote} includes a file that is not a system header; {allowed}")
        if policy.allowed_includes is not None and name not in policy.allowed_includes:
            allowed = ", ".join(f"<{h}>" for h in policy.allowed_includes)
            return Finding(Outcome.SCREEN_REJECTED, f"{wrote} includes <{name}>, which is not allowed (allowed: {allowed})")
    return None


def _text_problem(source: str, policy: ScreenConfig) -> Finding | None:
    text = normalise_c(source)
    verdict = c_directive_problem(text, policy, includes=True)  # also what failed to include
    if verdict:
        return Finding(Outcome.SCREEN_REJECTED, verdict.reason)
    code = strip_c_comments_and_strings(text)
    for name in C_FILE_PROBES:
        if re.search(rf"(?<![\w.]){re.escape(name)}\b", code):
            return Finding(Outcome.SCREEN_REJECTED, f"uses `{name}`, which is forbidden here")
    return None


def _probe_problem(stderr: str, path: str, source: str) -> Finding | None:
    """A use of a poisoned file probe: the candidate's own, or a header's it included (named)."""
    lines = stderr.replace(path, Path(path).name).splitlines()
    for i, line in enumerate(lines):
        m = re.search(r'attempt to use poisoned "(\w+)"', line)
        if not m:
            continue
        why = f"uses `{m.group(1)}`; a candidate may not test which files exist"
        if not line.startswith(Path(path).name + ":"):  # in a header: name the candidate's #include
            chain = "\n".join(lines[max(0, i - 12):i])
            found = re.findall(rf"from {re.escape(Path(path).name)}:(\d+)", chain)
            src = source.splitlines()
            where = int(found[-1]) if found else 0
            wrote = f"line {where} (`{src[where - 1].strip()[:80]}`)" if 0 < where <= len(src) else "an #include"
            why = f"{wrote} includes a header that tests which files exist (`{m.group(1)}`); a candidate may not"
        return Finding(Outcome.SCREEN_REJECTED, why)
    return None


def _token_problem(own: list[tuple[int, str]], policy: ScreenConfig) -> Finding | None:
    for line, text in own:
        stripped = text.strip()
        if stripped.startswith("#pragma"):
            why = pragma_problem(stripped[len("#pragma"):])
            if why:
                return Finding(Outcome.SCREEN_REJECTED, f"line {line}: {why}")
    code = strip_c_comments_and_strings("\n".join(t for _, t in own if not t.lstrip().startswith("#")))
    seen = set(_IDENT.findall(code))
    for name in forbidden_c_identifiers(policy):
        if name in seen:
            line = next((n for n, t in own if re.search(rf"(?<![\w.]){re.escape(name)}\b", t)), None)
            where = f"line {line}: " if line else ""
            what = "an asm statement, not allowed in this experiment" if name in C_ASM else "which is forbidden here"
            return Finding(Outcome.SCREEN_REJECTED, f"{where}uses `{name}` after preprocessing, {what}")
    if policy.allow_asm and _ASM_FILE_READ.search(_string_text(own)):
        return Finding(Outcome.SCREEN_REJECTED, "asm that reads a file (.incbin, .include) is not allowed")
    return None


def _string_text(own: list[tuple[int, str]]) -> str:
    """The candidate's string literals, adjacent ones joined and escapes decoded (as gcc hands asm to as)."""
    text = "\n".join(t for _, t in own if not t.lstrip().startswith("#"))
    text = re.sub(r'"\s*"', "", text)  # "a" "b" is "ab"
    literals = re.findall(r'"((?:\\.|[^"\\\n])*)"', text)
    return "\n".join(codecs.decode(lit, "unicode_escape", errors="replace") for lit in literals)


# --- compiler messages shown to the model ---

_LOCATED = re.compile(r"^(?P<file>[^\s:][^:]*):(?:\d+:)?(?:\d+:)?\s")
_QUOTED = re.compile(r"^\s*\d*\s*\|")
_LINKER = re.compile(r"(undefined reference to .*|multiple definition of [^;]*|cannot find -\S+)")
_TOOL = re.compile(r"^(collect2|cc1|cc|gcc|clang|g\+\+|c\+\+)(-[\d.]+)?: ")


def diagnostics(text: str, build_dir: Path, system: list[str] | None = None, name: str = CANDIDATE) -> str:
    """Compiler and linker output reduced to what concerns the candidate: its own diagnostics with
    their source lines, messages located in system headers without their source lines, linker
    messages without locations; nothing about, or quoted from, any other file."""
    system = system or list(DEFAULT_SYSTEM_DIRS)
    text = text.replace(str(build_dir) + "/", "")
    out: list[str] = []
    state = "drop"  # whether the lines that follow belong to a kept diagnostic of the candidate
    for line in text.splitlines():
        linker = _LINKER.search(line)
        if linker:
            out.append(linker.group(1).strip())
            state = "drop"
        elif _TOOL.match(line):
            out.append(line)
            state = "drop"
        elif line.startswith(("In file included from ", "                 from ")):
            state = "drop"
        elif _LOCATED.match(line):
            file = _LOCATED.match(line).group("file")
            if file == name:
                out.append(line)
                state = "keep"
            elif file.startswith("/") and _system_name(os.path.normpath(file), system) is not None:
                out.append(line)
                state = "drop"  # the header's own text is not shown
            else:
                state = "drop"
        elif state == "keep":
            out.append(line)
    return "\n".join(out)


def first_errors(cleaned: str, limit: int = 6) -> str:
    """The first error lines of diagnostics() output, for a reason."""
    lines = cleaned.splitlines()
    picked = [ln for ln in lines if re.search(r"error|undefined reference|multiple definition|cannot find", ln)]
    chosen = "\n".join((picked or lines[-limit:])[:limit])
    return chosen or "build failed; its messages concern files other than the candidate and are not shown"
