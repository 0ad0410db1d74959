"""Novelty before evaluation: is this candidate the same program as one already tried, or nearly?

Exact: equal after normalising comments and whitespace. Near: Jaccard similarity of token
shingles above a threshold, against candidates that were already evaluated (built and run).
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass

from looplab.extract import normalize

TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?[fFuUlL]*|\S")
SHINGLE = 5  # tokens per shingle: long enough to see structure, short enough to survive small edits
C_WORDS = set("""auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile
while size_t ptrdiff_t int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t uintptr_t NULL
memset memcpy memmove sqrtf sqrt expf exp logf log fabsf fabs fmaxf fmaxf fminf tanhf powf INFINITY""".split())
PY_WORDS = set(keyword.kwlist) | set(dir(builtins))
KEEP = re.compile(r"^(_mm|__m|__builtin)")  # intrinsics and vector types say what the code does


def canonical_tokens(source: str, language: str) -> list[str]:
    """Tokens with the candidate's own names renamed by first use: a renamed copy is the same program."""
    keep = C_WORDS if language == "c" else PY_WORDS
    names: dict[str, str] = {}
    out = []
    for tok in TOKEN.findall(normalize(source, language)):
        if (tok[0].isalpha() or tok[0] == "_") and tok not in keep and not KEEP.match(tok):
            tok = names.setdefault(tok, f"v{len(names)}")
        out.append(tok)
    return out


def shingles(source: str, language: str) -> frozenset[int]:
    tokens = canonical_tokens(source, language)
    if len(tokens) < SHINGLE:
        return frozenset({hash(tuple(tokens))})
    return frozenset(hash(tuple(tokens[i:i + SHINGLE])) for i in range(len(tokens) - SHINGLE + 1))


def similarity(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass
class Seen:
    attempt_id: int
    shingles: frozenset[int]


class NoveltyIndex:
    """Shingle sets of evaluated candidates, kept in memory so each check is one pass."""

    def __init__(self, language: str, threshold: float):
        self.language = language
        self.threshold = threshold
        self.seen: list[Seen] = []

    def add(self, attempt_id: int, source: str) -> None:
        self.seen.append(Seen(attempt_id, shingles(source, self.language)))

    def nearest(self, source: str) -> tuple[int, float] | None:
        """The most similar evaluated attempt at or above the threshold, as (attempt id, similarity)."""
        if self.threshold >= 1.0:
            return None
        mine = shingles(source, self.language)
        best: tuple[int, float] | None = None
        for seen in self.seen:
            s = similarity(mine, seen.shingles)
            if s >= self.threshold and (best is None or s > best[1]):
                best = (seen.attempt_id, s)
        return best
