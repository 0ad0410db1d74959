"""Novelty before evaluation: is this candidate nearly the same program as one that already ran?

Exact repeats are found by the store's normalised-source hash (loop._earlier_same). Near
duplicates, here, compare only what the model may change (the EVOLVE-BLOCK contents, else the
whole candidate), lexed with comments and docstrings dropped and the candidate's own names
canonicalised. Two candidates are near duplicates when their literal sequences (numbers, strings,
True/None/NULL) are equal, so a tuned constant is always a new candidate, and the Jaccard
similarity of their 5-token shingles reaches the threshold. Only candidates that ran and were
valid are compared against: a near copy of a failed attempt may be the repair of it.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from looplab.propose.extract import BLOCK_END, BLOCK_START
from looplab.records import Outcome

SHINGLE = 5  # tokens per shingle: long enough to see structure, short enough to survive small edits
VALID = frozenset({Outcome.BASELINE, Outcome.ACCEPTED, Outcome.SPECIALIST, Outcome.SLOWER})  # ran, right
C_WORDS = set("""auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile
while size_t ptrdiff_t int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t uintptr_t bool
memset memcpy memmove sqrtf sqrt expf exp logf log fabsf fabs fmaxf fminf tanhf powf INFINITY""".split())
PY_WORDS = set(keyword.kwlist) | set(dir(builtins))
LITERAL_WORDS = {"True", "False", "None", "true", "false", "NULL", "nullptr"}  # constants spelled as names
NOT_A_TYPE = {"return", "goto", "case", "sizeof", "else", "do", "if", "while", "for", "switch", "break",
              "continue", "default", "throw", "yield", "await", "in", "new", "delete"}
DECLARED_BEFORE = set("=;,)[(:{")
SPACE = set(" \t\n\r\f\v\\")
QUOTES = set("'\"")
LIT_START = QUOTES | set("0123456789")
INCLUDE = re.compile(r"^[ \t]*#[ \t]*include\b[^\n]*", re.M)  # declarations, not behaviour
IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+)?import[ \t]+(\([^)]*\)|[^\n#;]*)", re.M)
_NUMBER = r"(?:0[xXbBoO][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)[A-Za-z]*"
_QUOTED = r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
_TRIPLE = r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|'
_LEX = r"[ \t\r\f\v]*(\\\n|\n\s*|{comment}|{prefix}(?:{quoted})|{number}|[A-Za-z_]\w*|.)"  # blanks in the match
HASH_COMMENTS = {"sh", "bash", "zsh", "r", "ruby", "perl", "julia", "nim", "yaml", "toml", "make", "cmake", "tcl"}
DASH_COMMENTS = {"sql", "lua", "haskell", "vhdl", "ada"}
LEXERS = {  # family -> (pattern, how its comments start)
    "python": (re.compile(_LEX.format(comment=r"#[^\n]*", prefix=r"[rRbBuUfF]{0,2}", quoted=_TRIPLE + _QUOTED,
                                      number=_NUMBER), re.S), ("#",)),
    "c": (re.compile(_LEX.format(comment=r"//[^\n]*|/\*[\s\S]*?\*/", prefix=r"(?:u8|[uUL])?", quoted=_QUOTED,
                                 number=_NUMBER), re.S), ("//", "/*")),
    "#": (re.compile(_LEX.format(comment=r"#[^\n]*", prefix="", quoted=_QUOTED, number=_NUMBER), re.S), ("#",)),
    "--": (re.compile(_LEX.format(comment=r"--[^\n]*|/\*[\s\S]*?\*/", prefix="", quoted=_QUOTED,
                                  number=_NUMBER), re.S), ("--", "/*")),
}


@dataclass(frozen=True)
class Fingerprint:
    """What near-duplicate detection compares: the literal sequence, and the shingles of the rest."""

    literals: tuple[str, ...]
    shingles: frozenset[int]


def compared_part(source: str) -> str:
    """The text the model may change: the EVOLVE-BLOCK contents when there are markers, else everything."""
    if BLOCK_START not in source:
        return source
    kept, inside = [], False
    for line in source.splitlines():
        if BLOCK_START in line or BLOCK_END in line:
            inside = BLOCK_START in line
            kept.append("")
        elif inside:
            kept.append(line)
    return "\n".join(kept)


def lex(text: str, language: str) -> list[tuple[str, str]]:
    """(kind, text) tokens, kind in lit/name/op; comments dropped, and Python docstrings (a string
    alone on its logical line) too: neither changes what the program does."""
    family = language if language == "python" else "#" if language in HASH_COMMENTS else \
        "--" if language in DASH_COMMENTS else "c"
    pattern, comment = LEXERS[family]
    python = language == "python"
    out: list[tuple[str, str]] = []
    depth, line_start, pending = 0, True, -1  # pending: index of a string that may be a docstring
    for tok in pattern.findall(text):
        c = tok[0]
        if c in SPACE or tok.startswith(comment):
            if c != "\\" and "\n" in tok:
                if pending >= 0:
                    del out[pending]
                pending, line_start = -1, depth == 0
            continue
        if c in LIT_START or (c == "." and len(tok) > 1) or (tok[-1] in QUOTES and len(tok) > 1):
            pending = len(out) if python and line_start and tok[-1] in QUOTES else -1
            out.append(("lit", tok))
        else:
            pending = -1
            if c.isalpha() or c == "_":
                out.append(("name", tok))
            else:
                depth += (c in "([{") - (c in ")]}")
                out.append(("op", tok))
        line_start = False
    if pending >= 0:
        del out[pending]
    return out


def _literal(tok: str) -> str:
    if tok[-1] in QUOTES or tok in LITERAL_WORDS:
        return tok
    return tok.replace("_", "").lower()  # 1_000 == 1000, 0XFF == 0xff


def imported(source: str) -> set[str]:
    """Python names bound by import statements (not by `as`): a library's names, never renamed away."""
    names = set()
    for m in IMPORT.finditer(source):
        for item in m.group(1).strip("() \t\\").split(","):
            words = item.split()
            if words:
                names.add(words[0].split(".")[0])
    return names


def declared(tokens: list[tuple[str, str]]) -> set[str]:
    """C-like: names right after a type (or `*`) and before = ; , ) [ ( : { are the candidate's own."""
    own = set()
    for i in range(1, len(tokens) - 1):
        (pkind, prev), (kind, tok), (_, nxt) = tokens[i - 1], tokens[i], tokens[i + 1]
        if kind != "name" or tok in C_WORDS:
            continue
        typed = (pkind == "name" and prev not in NOT_A_TYPE) or prev in ("*", "&")
        if (typed and nxt in DECLARED_BEFORE) or (prev == "define" and i > 1 and tokens[i - 2][1] == "#"):
            own.add(tok)
    return own


def fingerprint(source: str, language: str) -> Fingerprint:
    """Literals in order, and the shingles of the tokens with the candidate's own names renamed by
    first use (Python: every name but keywords, builtins, imports and attributes; else declared ones)."""
    python = language == "python"
    part = compared_part(source)
    whole = part is source
    if not python:  # the same program with more #include lines is the same program
        part = INCLUDE.sub("", part)
    tokens = lex(part, language)
    library = PY_WORDS | imported(source) if python else set()
    own = set() if python else declared(tokens if whole else lex(source, language))
    names: dict[str, str] = {}
    literals: list[str] = []
    canonical: list[str] = []
    prev = ""
    for kind, tok in tokens:
        word = tok
        if kind == "lit" or tok in LITERAL_WORDS:
            word = _literal(tok)
            literals.append(word)
        elif kind == "name" and ((tok not in library and prev != ".") if python else tok in own):
            word = names.setdefault(tok, f"v{len(names)}")
        canonical.append(word)
        prev = tok
    if len(canonical) < SHINGLE:
        return Fingerprint(tuple(literals), frozenset({hash(tuple(canonical))}))
    windows = zip(*(canonical[i:] for i in range(SHINGLE)), strict=False)  # every run of SHINGLE tokens
    return Fingerprint(tuple(literals), frozenset(map(hash, windows)))


def shingles(source: str, language: str) -> frozenset[int]:
    return fingerprint(source, language).shingles


def similarity(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def is_near(a: Fingerprint, b: Fingerprint, threshold: float) -> bool:
    """The rule the index answers exactly: equal literals and shingle similarity at the threshold."""
    return a.literals == b.literals and similarity(a.shingles, b.shingles) >= threshold


class NoveltyIndex:
    """Fingerprints of the candidates that ran and were valid, grouped by literal sequence.

    A lookup reads one group (a near duplicate must share the literal sequence), and counts every
    member's shingle overlap with the probe at once, bit-parallel, so its cost grows with the group
    by 1/64 of a machine word per member; only true near duplicates are then compared exactly.
    Answers are the exact scan's: the most similar at or above the threshold, the earliest on ties.
    """

    def __init__(self, language: str, threshold: float,
                 load: Callable[[], Iterable[tuple[int, str]]] | None = None):
        self.language = language
        self.threshold = threshold
        self._load = load  # run at the first lookup: start-up reads nothing it may not need
        self._queued: list[tuple[int, str]] = []
        self._ids: set[int] = set()
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._recent: dict[str, Fingerprint] = {}
        self._lock = threading.RLock()  # prepare() may build the index in a thread while the loop looks up

    def __len__(self) -> int:
        with self._lock:
            self._ensure()
            return len(self._ids)

    def prepare(self) -> None:
        """Read and index the stored attempts now (in a thread, beside the first model call) rather than at
        the first lookup; a store that fails here is asked again at that lookup."""
        try:
            with self._lock:
                self._ensure()
        except Exception:  # the lookup that needs the index retries and reports it
            pass

    def record(self, attempt_id: int, source: str, outcome: Outcome) -> None:
        """Index a finished attempt if it ran and was valid; failures are never near-duplicate targets."""
        if outcome in VALID:
            self.add(attempt_id, source)

    def add(self, attempt_id: int, source: str) -> None:
        with self._lock:
            self._add(attempt_id, source)

    def _add(self, attempt_id: int, source: str) -> None:
        if self._load is not None:
            self._queued.append((attempt_id, source))  # indexed with the stored ones at the first lookup
            return
        if attempt_id not in self._ids:
            self._ids.add(attempt_id)
            fp = self._fingerprint(source)
            self._groups.setdefault(fp.literals, _Group()).add(attempt_id, fp.shingles)

    def nearest(self, source: str) -> tuple[int, float] | None:
        """The most similar valid attempt at or above the threshold, as (attempt id, similarity)."""
        if self.threshold >= 1.0:
            return None
        with self._lock:
            self._ensure()
            fp = self._fingerprint(source)
            group = self._groups.get(fp.literals)
            return group.nearest(fp.shingles, self.threshold) if group else None

    def _fingerprint(self, source: str) -> Fingerprint:
        """A candidate looked up before it is recorded is lexed once (the last few are kept)."""
        fp = self._recent.get(source)
        if fp is None:
            fp = fingerprint(source, self.language)
            if len(self._recent) >= 16:
                self._recent.pop(next(iter(self._recent)))
            self._recent[source] = fp
        return fp

    def _ensure(self) -> None:
        if self._load is None:
            return
        stored = list(self._load())  # a store that fails here is asked again at the next lookup
        self._load = None
        for attempt_id, source in [*stored, *self._queued]:
            self._add(attempt_id, source)
        self._queued.clear()


SCAN = 16  # groups this small are compared one by one: cheaper than setting up the bit counters
COMMON = 16  # a shingle in this many members gets a bitmask; rarer ones keep a short list (memory)


class _Group:
    """Members sharing one literal sequence. Each member's shingles are kept packed (sorted 8-byte
    values: a tenth of a set's memory); once the group outgrows SCAN, per-shingle member bitmasks
    (bit i: member i) are kept too, so one lookup counts every member's overlap at once."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.packed: list[bytes] = []
        self.by_packed: dict[bytes, int] = {}
        self.indexed = 0  # members already in the bitmasks below
        self.by_size: dict[int, int] = {}  # shingle-set size -> members of that size
        self.rare: dict[int, list[int]] = {}
        self.common: dict[int, int] = {}

    def add(self, attempt_id: int, sh: frozenset[int]) -> None:
        packed = array("q", sorted(sh)).tobytes()
        same = self.by_packed.get(packed)
        if same is not None:  # the same program again (renamed, reformatted): one member, earliest id
            self.ids[same] = min(self.ids[same], attempt_id)
            return
        self.by_packed[packed] = len(self.ids)
        self.ids.append(attempt_id)
        self.packed.append(packed)

    def nearest(self, sh: frozenset[int], t: float) -> tuple[int, float] | None:
        if len(self.ids) <= SCAN:
            return self._best(sh, t, range(len(self.ids)))
        self._index()
        levels = [0] * len(sh).bit_length()  # bit j of every member's count of shared shingles
        for s in sh:
            mask = self.common.get(s)
            if mask is None:
                members = self.rare.get(s)
                if members is None:
                    continue
                mask = _mask(members)
            for j in range(len(levels)):  # add one to the members in mask (ripple carry)
                carry = levels[j] & mask
                levels[j] ^= mask
                mask = carry
                if not mask:
                    break
        everyone, hits = (1 << len(self.ids)) - 1, 0
        n = len(sh)
        for size in range(math.ceil(t * n - 1e-9), math.floor(n / t + 1e-9) + 1):
            members = self.by_size.get(size)
            if members:  # J >= t  <=>  shared >= t (n + size) / (1 + t); float slack, checked exactly below
                hits |= members & _at_least(levels, math.ceil(t * (n + size) / (1 + t) - 1e-9), everyone)
        return self._best(sh, t, _bits(hits))

    def _index(self) -> None:
        for member in range(self.indexed, len(self.ids)):
            bit = 1 << member
            shingles = memoryview(self.packed[member]).cast("q")
            self.by_size[len(shingles)] = self.by_size.get(len(shingles), 0) | bit
            for s in shingles:
                if s in self.common:
                    self.common[s] |= bit
                    continue
                members = self.rare.setdefault(s, [])
                members.append(member)
                if len(members) >= COMMON:
                    self.common[s] = _mask(self.rare.pop(s))
        self.indexed = len(self.ids)

    def _best(self, sh: frozenset[int], t: float, members: Iterable[int]) -> tuple[int, float] | None:
        best: tuple[int, float] | None = None
        for i in members:
            other = memoryview(self.packed[i]).cast("q")
            shared = len(sh.intersection(other))
            s = shared / (len(sh) + len(other) - shared)  # = similarity(), to the last bit
            if s >= t and (best is None or s > best[1] or (s == best[1] and self.ids[i] < best[0])):
                best = (self.ids[i], s)
        return best


def _mask(members: list[int]) -> int:
    mask = 0
    for i in members:
        mask |= 1 << i
    return mask


def _at_least(levels: list[int], k: int, everyone: int) -> int:
    """Members whose bit-sliced count (levels[j] = bit j) is at least k."""
    if k <= 0:
        return everyone
    if k >= 1 << len(levels):
        return 0
    greater, equal = 0, everyone
    for j in reversed(range(len(levels))):
        if k >> j & 1:
            equal &= levels[j]
        else:
            greater |= equal & levels[j]
            equal &= ~levels[j]
    return greater | equal


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low
