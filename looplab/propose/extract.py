"""Reply text → exactly one Candidate for the target, or an ExtractError saying why not.

Accepted reply shapes: one fenced code block holding the target (C function / Python def, or the
whole EVOLVE-BLOCK file), or SEARCH/REPLACE edits against the incumbent.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import re
import tokenize

from looplab.records import Candidate

FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
OPEN_FENCE = re.compile(r"^```", re.M)
STRATEGY = re.compile(r"^[ \t>*_#-]*strategy[*_]*[ \t]*:[*_]*[ \t]*(.+?)[*_ \t]*$", re.I | re.M)
NEXT = re.compile(r"^[ \t>*_#-]*(?:next|ideas?)[*_]*[ \t]*:[*_]*[ \t]*(.+?)[ \t]*$", re.I | re.M)
TAGS = re.compile(r"^[ \t>*_#-]*tags[*_]*[ \t]*:[*_]*[ \t]*(.+?)[ \t]*$", re.I | re.M)
EDIT = re.compile(r"<{5,9} SEARCH[ \t]*\n(.*?)\n?={5,9}[ \t]*\n(.*?)\n?>{5,9} REPLACE", re.S)
BLOCK_START, BLOCK_END = "EVOLVE-BLOCK-START", "EVOLVE-BLOCK-END"
C_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "else", "do"}


class ExtractError(Exception):
    """The reply holds no usable candidate; the message is fed back to the model via memory."""


def extract_candidate(reply: str, *, language: str, target: str, incumbent: str,
                      allow_helpers: bool = True, files: list[str] | None = None) -> Candidate:
    """Find the one candidate in a model reply. Raises ExtractError with a reason the model can act on.

    files: a files target's paths (the candidate is then a packed set of files)."""
    strategy_match = STRATEGY.search(reply)
    strategy = strategy_match.group(1).strip()[:200] if strategy_match else ""
    tags = _split_list(TAGS.search(reply))
    if files:
        from looplab.propose.extract_files import extract_files  # it builds on this module

        return Candidate(source=extract_files(reply, allowed=files, incumbent=incumbent), strategy=strategy, tags=tags)
    if EDIT.search(reply):
        source = apply_edits(incumbent, reply)
    elif BLOCK_START in incumbent:
        source = _evolve_block_candidate(reply, incumbent)
    else:
        source = _single_definition_block(reply, language, target, allow_helpers)
    if not source.endswith("\n"):
        source += "\n"
    return Candidate(source=source, strategy=strategy, tags=tags)


def next_ideas(reply: str) -> list[str]:
    """Ideas the model suggests for later attempts ("Next: a; b")."""
    return [i for m in NEXT.finditer(reply) for i in _split_list(m)][:5]


def _split_list(match: re.Match | None) -> list[str]:
    if not match:
        return []
    return [p.strip(" .`*") for p in re.split(r"[;,]", match.group(1)) if p.strip(" .`*")][:8]


def code_blocks(reply: str) -> list[str]:
    blocks = [m.group(2) for m in FENCE.finditer(reply)]
    if not blocks and OPEN_FENCE.search(reply):
        raise ExtractError("code block is not closed with ``` (reply truncated? keep the reply shorter)")
    return blocks


def _single_definition_block(reply: str, language: str, target: str, allow_helpers: bool) -> str:
    blocks = code_blocks(reply)
    if not blocks:
        raise ExtractError(f"no fenced code block in the reply; put the full `{target}` in one ```{language} block")
    finder = _c_definitions if language == "c" else _py_definitions
    defining = [(b, finder(b)) for b in blocks]
    defining = [(b, names) for b, names in defining if names.count(target)]
    if not defining:
        raise ExtractError(f"no code block defines `{target}`; reply with its complete definition")
    if len(defining) > 1:
        raise ExtractError(f"{len(defining)} code blocks define `{target}`; send exactly one")
    block, names = defining[0]
    if names.count(target) > 1:
        raise ExtractError(f"`{target}` is defined {names.count(target)} times in the code block; define it once")
    extra = [n for n in names if n != target]
    if extra and not allow_helpers:
        raise ExtractError(f"extra top-level definitions {extra} are not allowed; define only `{target}`")
    if language == "c":
        exported = [n for n in _c_definitions(block, exported_only=True) if n != target]
        if exported:
            raise ExtractError(f"helper functions {exported} must be `static` (only `{target}` may be exported)")
        if "main" in names:
            raise ExtractError("the candidate defines main(); define only the target function")
    return block


def strip_c_comments_and_strings(src: str) -> str:
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)

    def keep_newlines(m: re.Match) -> str:
        text = m.group(0)
        return '""' if text.startswith('"') else ("' '" if text.startswith("'") else "\n" * text.count("\n") or " ")

    return pattern.sub(keep_newlines, src)


def _c_definitions(src: str, exported_only: bool = False) -> list[str]:
    """Names of functions defined at file scope (a name, a parameter list, then a body)."""
    code = re.sub(r"^[ \t]*#[^\n]*(\\\n[^\n]*)*", "", strip_c_comments_and_strings(src), flags=re.M)
    names: list[str] = []
    depth, i, n = 0, 0, len(code)
    head_start = 0
    while i < n:
        ch = code[i]
        if ch == "{":
            if depth == 0:
                head = code[head_start:i]
                m = re.search(r"\b([A-Za-z_]\w*)\s*\((?:[^()]|\([^()]*\))*\)\s*(?:__attribute__\s*\(\(.*?\)\)\s*)*$", head, re.S)
                if m and m.group(1) not in C_KEYWORDS and "=" not in head.split(m.group(1))[0][-2:]:
                    is_static = re.search(r"\bstatic\b", head[: m.start(1)].split(";")[-1]) is not None
                    if not (exported_only and is_static):
                        names.append(m.group(1))
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                head_start = i + 1
        elif ch == ";" and depth == 0:
            head_start = i + 1
        i += 1
    return names


def _py_definitions(src: str) -> list[str]:
    try:
        tree = ast.parse(src)
    except SyntaxError:
        # Let the screen report the syntax error; here we only need the names.
        return re.findall(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", src, re.M) + re.findall(
            r"^class\s+([A-Za-z_]\w*)", src, re.M)
    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def apply_edits(incumbent: str, reply: str) -> str:
    """Apply SEARCH/REPLACE blocks in order; each SEARCH text must occur in the current source."""
    source = incumbent
    for k, m in enumerate(EDIT.finditer(reply), 1):
        search, replace = m.group(1), m.group(2)
        if search in source:
            source = source.replace(search, replace, 1)
            continue
        loose = _whitespace_tolerant(search)
        found = re.search(loose, source)
        if not found:
            raise ExtractError(f"SEARCH block {k} does not match the current code exactly; copy the lines verbatim")
        source = source[: found.start()] + replace + source[found.end():]
    return source


def _whitespace_tolerant(text: str) -> str:
    return r"\s*".join(re.escape(part) for part in text.split())


def _evolve_block_candidate(reply: str, incumbent: str) -> str:
    blocks = code_blocks(reply)
    if not blocks:
        raise ExtractError("no fenced code block in the reply; send the full program in one code block")
    with_markers = [b for b in blocks if BLOCK_START in b and BLOCK_END in b]
    if len(with_markers) > 1 or (not with_markers and len(blocks) > 1):
        raise ExtractError("several code blocks; send exactly one (the whole program or the EVOLVE-BLOCK body)")
    if not with_markers:
        before, _, rest = incumbent.partition(BLOCK_START)
        _, _, after = rest.partition(BLOCK_END)
        start_line_end = rest.find("\n") + 1
        end_line_start = rest.rfind("\n", 0, rest.find(BLOCK_END)) + 1
        return before + BLOCK_START + rest[:start_line_end] + blocks[0] + rest[end_line_start:]
    candidate = with_markers[0]
    if outside_evolve_blocks(candidate) != outside_evolve_blocks(incumbent):
        raise ExtractError("the reply changes code outside EVOLVE-BLOCK-START/END; edit only inside the markers")
    return candidate


def outside_evolve_blocks(src: str) -> str:
    """The code outside EVOLVE-BLOCK markers, whitespace-trimmed: what a candidate must not change."""
    kept, inside = [], False
    for line in src.splitlines():
        if BLOCK_START in line:
            inside = True
            continue
        if BLOCK_END in line:
            inside = False
            continue
        if not inside:
            kept.append(line.strip())
    return "\n".join(x for x in kept if x)


def normalize(source: str, language: str) -> str:
    """Source with comments and whitespace differences removed: equal means 'the same program'."""
    if language not in ("c", "python"):  # no lexer for it: whitespace differences only
        return " ".join(source.split())
    if language == "python":
        try:
            tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                      if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)]
            return " ".join(t.string for t in tokens if t.string.strip())
        except (tokenize.TokenError, IndentationError, SyntaxError):
            return " ".join(source.split())
    code = re.sub(r"//[^\n]*|/\*.*?\*/", " ", source, flags=re.S)
    code = re.sub(r"\s+", " ", code)
    return re.sub(r" ?([^\w ]) ?", r"\1", code).strip()


@functools.lru_cache(maxsize=64)  # one attempt asks for its candidate's hash several times
def source_hash(source: str, language: str) -> str:
    return hashlib.sha256(normalize(source, language).encode()).hexdigest()
