"""Novelty before evaluation: is this candidate the same program as one already tried, or nearly?

Exact: equal after normalising comments and whitespace. Near: Jaccard similarity of token
shingles above a threshold, against candidates that were already evaluated (built and run).
"""

from __future__ import annotations

import builtins
import heapq
import keyword
import math
import re

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


class NoveltyIndex:
    """Shingle sets of evaluated candidates, with a prefix-filter index so a check reads only the
    few candidates that can reach the threshold (not every one ever evaluated).

    Prefix filtering: with shingles in one global order, two sets of Jaccard similarity >= t share
    at least one of the first |x| - ceil(t * |x|) + 1 shingles of each; only those are indexed.
    """

    def __init__(self, language: str, threshold: float):
        self.language = language
        self.threshold = threshold
        self.ids: list[int] = []
        self.sets: list[frozenset[int]] = []
        self._postings: dict[int, list[int]] = {}  # prefix shingle -> positions in ids/sets

    def __len__(self) -> int:
        return len(self.ids)

    def _prefix(self, sh: frozenset[int]) -> list[int]:
        keep = len(sh) - math.ceil(min(self.threshold, 1.0) * len(sh) - 1e-9) + 1  # float slack: never too short
        return heapq.nsmallest(max(keep, 1), sh)

    def add(self, attempt_id: int, source: str) -> None:
        sh = shingles(source, self.language)
        self.ids.append(attempt_id)
        self.sets.append(sh)
        for token in self._prefix(sh):
            self._postings.setdefault(token, []).append(len(self.sets) - 1)

    def nearest(self, source: str) -> tuple[int, float] | None:
        """The most similar evaluated attempt at or above the threshold, as (attempt id, similarity)."""
        if self.threshold >= 1.0:
            return None
        mine = shingles(source, self.language)
        candidates = {i for token in self._prefix(mine) for i in self._postings.get(token, ())}
        best: tuple[int, float] | None = None
        for i in sorted(candidates):
            s = similarity(mine, self.sets[i])
            if s >= self.threshold and (best is None or s > best[1]):
                best = (self.ids[i], s)
        return best
