"""The reply shape the prompt asks for, as a llama.cpp grammar (GBNF) a local model decodes under.

    Strategy: <one line>
    Tags: <one line>
    ```<language>                      for a files target, each file: its path alone on a line, then
    <code lines>                       its fenced block; or, instead of blocks, SEARCH/REPLACE edits
    ```                                under each path line
    Next: <optional line>

Every line has a length cap and the code a line cap derived from the token budget: uncapped, a small
model loops inside one line (a 0.5B model did, in the Tags line) and the reply never closes its block.
SEARCH/REPLACE edits fit inside a single target's block (extract.py finds them anywhere).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from looplab.config import Experiment
from looplab.propose.extract import BLOCK_START

TEXT_CHARS = 120  # the Strategy and Next lines
TAGS_CHARS = 60
CODE_CHARS = 80  # one code line (a longer line is broken by the grammar)
TOKENS_PER_LINE = 24  # what a long code line costs (a looping small model writes long ones): the block closes in budget
MIN_LINES, MAX_LINES = 12, 400
DEFAULT_MAX_TOKENS = 1024
MAX_FILES = 8
MAX_INCLUDES, MAX_HELPERS = 8, 2

@dataclass(frozen=True)
class ReplyShape:
    fence: str  # the info string after ``` (the experiment's language)
    files: tuple[str, ...] = ()  # a files target's paths; empty: one block
    anchor: str = ""  # a line the block must hold: the target's definition line, as the incumbent has it
    includes: tuple[str, ...] = ()  # the headers (C) or modules (Python) the screen allows; empty: any
    target: str = ""  # the target's name: a helper may not take it


def reply_shape(experiment: Experiment, incumbent: str = "") -> ReplyShape:
    screen = experiment.config.screen
    allowed = screen.allowed_includes if experiment.language == "c" else screen.allowed_imports
    return ReplyShape(experiment.language, tuple(experiment.config.target.files or ()),
                      definition_line(incumbent, experiment.target, experiment.language), tuple(allowed or ()),
                      experiment.target)


def definition_line(source: str, target: str, language: str) -> str:
    """The incumbent's line that starts the target's definition (`void f(...) {`, `def f(...):`), or ""."""
    if not target or BLOCK_START in source:
        return ""
    if language == "python":
        pattern = rf"^(?:async[ \t]+)?def[ \t]+{re.escape(target)}[ \t]*\(.*$"
    elif language == "c":
        pattern = rf"^[A-Za-z_][^;#/\n]*\b{re.escape(target)}[ \t]*\([^;\n]*$"
    else:
        return ""
    for m in re.finditer(pattern, source, re.M):
        rest = source[m.start():]
        if language == "python" or rest.find("{") < rest.find(";") or ";" not in rest:  # a definition
            return m.group(0).rstrip() if len(m.group(0)) <= 300 else ""
    return ""


def code_lines(max_tokens: int | None) -> int:
    """The most code lines a reply may hold so the block closes within the token budget."""
    budget = (max_tokens or DEFAULT_MAX_TOKENS) - 150  # Strategy, Tags and fences
    return max(MIN_LINES, min(MAX_LINES, budget // TOKENS_PER_LINE))


def gbnf(shape: ReplyShape, max_tokens: int | None = None) -> str:
    """The grammar: replies decoded under it always hold what extract.py reads."""
    lines = code_lines(max_tokens)
    rules = {
        "root": 'strategy tags "\\n"? body next?',
        # A first character that is not the prompt's placeholder (`<one line: ...>`) copied back.
        "strategy": f'"Strategy: " [^\\n<[# ] [^\\n]{{0,{TEXT_CHARS - 1}}} "\\n"',
        "tags": f'"Tags: " [^\\n<[# ] [^\\n]{{0,{TAGS_CHARS - 1}}} "\\n"',
        "block": f'"```" {_literal(shape.fence)} "\\n" code "```\\n"',
        "code": f"line{{1,{lines}}}",
        "line": f'([^`\\n] [^\\n]{{0,{CODE_CHARS - 1}}})? "\\n"',
        "next": f'"\\nNext: " [^\\n<[# ] [^\\n]{{0,{TEXT_CHARS - 1}}} "\\n"',
    }
    if shape.anchor and shape.fence in ("c", "python"):
        rules.update(_definition(shape, lines))
    if not shape.files:
        rules["body"] = "block"
    else:
        paths = " | ".join(_literal(p) for p in shape.files)
        most = min(MAX_FILES, len(shape.files))
        per_file = max(MIN_LINES, lines // max(1, len(shape.files)))
        rules.update({
            "body": f"fileblock{{1,{most}}} | fileedits{{1,{most}}}",
            "path": paths,
            "fileblock": 'path "\\n" block "\\n"?',
            "fileedits": 'path "\\n" edit{1,8} "\\n"?',
            "edit": f'"<<<<<<< SEARCH\\n" eline{{0,{per_file}}} "=======\\n" eline{{0,{per_file}}} ">>>>>>> REPLACE\\n"',
            "eline": f'([^`\\n=<>] [^\\n]{{0,{CODE_CHARS - 1}}})? "\\n"',
        })
    return "\n".join(f"{name} ::= {rule}" for name, rule in rules.items()) + "\n"


def _definition(shape: ReplyShape, lines: int) -> dict[str, str]:
    """One definition of the target, as its definition line starts it, last in the block; before it only
    includes/imports, comments and at most two helpers (C: static). Body lines are indented, so nothing
    in them can define the target a second time (or `main`, or an exported helper)."""
    helper_lines = max(4, lines // 4)
    rules = {
        "inner": f'([ \\t] [^\\n]{{0,{CODE_CHARS - 1}}})? "\\n"',
        "comment": f'"#" [^\\n]{{0,{CODE_CHARS}}} "\\n"' if shape.fence == "python"
        else f'"//" [^\\n]{{0,{CODE_CHARS}}} "\\n"',
    }
    if shape.fence == "c":
        rules.update({
            "code": f'include{{0,{MAX_INCLUDES}}} "\\n"? (helper "\\n"?){{0,{MAX_HELPERS}}} comment? target',
            "include": f'"#include <" ({_one_of(shape.includes)}) ">\\n"' if shape.includes
            else '"#include " [<"] [a-zA-Z0-9_./]{1,40} [>"] "\\n"',
            # static [inline] type name(params) { body } — the name is not the target's; or a declaration.
            "helper": f'"static " (ctype{{1,4}} hname "(" [^{{;\\n]{{0,{CODE_CHARS}}} "{{\\n" inner{{0,{helper_lines}}} "}}\\n" '
                      f'| [^{{;(\\n]{{1,{CODE_CHARS}}} ";\\n")',
            "ctype": '[a-zA-Z_] [a-zA-Z0-9_]{0,20} [ *]{1,3}',
            "hname": _other_name(shape.target),
            "target": f'{_literal(shape.anchor)} "\\n" inner{{1,{lines}}} "}}\\n"',
        })
    else:
        rules.update({
            "code": f'include{{0,{MAX_INCLUDES}}} "\\n"? (helper "\\n"?){{0,{MAX_HELPERS}}} comment? target',
            "include": f'("import " ({_one_of(shape.includes)}) | "from " ({_one_of(shape.includes)}) " import " '
                       '[a-zA-Z0-9_, ]{1,60}) "\\n"' if shape.includes
            else '("import " | "from ") [a-zA-Z0-9_., ]{1,60} ("import " [a-zA-Z0-9_., *]{1,60})? "\\n"',
            "helper": f'"def " hname "(" [^\\n]{{0,{CODE_CHARS}}} "\\n" inner{{1,{helper_lines}}}',
            "hname": _other_name(shape.target),
            "target": f'{_literal(shape.anchor)} "\\n" inner{{1,{lines}}}',
        })
    return rules


def _other_name(word: str) -> str:
    """An identifier that is not `word`: it differs at some character, or is shorter, or longer."""
    rest = "[a-zA-Z0-9_]{0,30}"
    options = [f'{_literal(word)} [a-zA-Z0-9_]{{1,30}}']
    for i, ch in enumerate(word):
        head = f"{_literal(word[:i])} " if i else ""
        options.append(f"{head}{_chars_but(ch, first=i == 0)} {rest}")
        if i:
            options.append(_literal(word[:i]))
    return " | ".join(options)


def _chars_but(excluded: str, *, first: bool) -> str:
    """A character class of identifier characters (no digit first) without `excluded`."""
    chars = [c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
             if c != excluded and not (first and c.isdigit())]
    runs: list[list[str]] = []  # [first, last] of consecutive code points
    for c in chars:
        if runs and ord(c) == ord(runs[-1][1]) + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return "[" + "".join(a if a == b else f"{a}-{b}" for a, b in runs) + "]"


def _one_of(words: tuple[str, ...]) -> str:
    return " | ".join(_literal(w) for w in words)


def _literal(text: str) -> str:
    """A GBNF string literal (JSON escaping is a subset GBNF reads)."""
    return json.dumps(text)
