"""Memory: what worked, what keeps failing, what is still unexplored — derived from the store.

build_memory() reads the store; render_memory_md() makes a bounded markdown for the prompt;
write_memory() regenerates MEMORY.json and MEMORY.md from scratch. Holdout case names never
appear: the model must not learn which hidden cases guard against overfitting.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import weakref
from collections.abc import Iterable
from typing import Any

from looplab.config import Experiment
from looplab.filesets import write_atomic
from looplab.layout import MEMORY_JSON, MEMORY_MD
from looplab.records import Outcome
from looplab.store import AttemptRow, Store

WINDOW = 400  # failures and ideas come from this many latest attempts; winners from all
MESSAGE_CHARS = 200  # one representative message per failure cluster
LINE_CHARS = 300  # any single markdown line
DEFAULT_MD_CHARS = 4000  # MEMORY.md bound when the experiment sets prompt.memory_chars = 0
HIDDEN = "a hidden case"
HOLDOUT_SIGNATURE = "failed a hidden holdout case"


_LOCATION = re.compile(r"^\s*(?:[\w./\\-]*[\\/])?[\w.-]+\.\w+:\d+(?::\d+)?:\s*")
_QUOTED = re.compile(r"'[^']*'|‘[^’]*’|\"[^\"]*\"|`[^`]*`")
_PATH = re.compile(r"(?:[\w.-]*/)+[\w.-]+")
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[-+]?\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_ERROR_WORD = re.compile(r"error", re.I)
_UNCHANGED = re.compile(r"^unchanged from turn \d+: ")  # looplab/propose/repair.py's prefix
_NOT_AN_ERROR = re.compile(r"^\s*\d+ errors? generated|compilation terminated", re.I)
_STOPWORDS = {
    "the", "and", "for", "with", "use", "using", "try", "loop", "loops", "code", "more", "less", "better",
    "faster", "instead", "into", "from", "via", "than", "then", "each", "all", "per", "out", "way", "its",
}


# --- text helpers ---

def _scrubber(holdout: Iterable[str]):
    names = sorted({h for h in holdout if h}, key=len, reverse=True)
    if not names:
        return lambda text: text
    pattern = re.compile(r"(?<![\w])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w])")
    return lambda text: pattern.sub(HIDDEN, text)


def _cap(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def first_error_line(text: str) -> str:
    """The first line that reports an error (gcc 'error:', Python 'NameError:'), else the first line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if _ERROR_WORD.search(ln) and not _NOT_AN_ERROR.search(ln):
            return ln
    return lines[0] if lines else ""


def normalise(line: str) -> str:
    """Strip what differs between occurrences of the same mistake: locations, names, paths, numbers."""
    line = _LOCATION.sub("", line)
    line = _QUOTED.sub("'_'", line)
    line = _PATH.sub("PATH", line)
    line = _NUMBER.sub("N", line)
    return " ".join(line.split())


def _short_paths(line: str) -> str:
    """Keep file names, drop the sandbox directories around them (they differ every attempt)."""
    return _PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], line)


def _stem(word: str) -> str:
    for suffix in ("ation", "ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=4096)  # the same strategies and ideas are read again after every attempt
def _keywords(text: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3 and w not in _STOPWORDS)


# --- the three parts ---

_FAILURES: dict[int, tuple[AttemptRow, frozenset[str], tuple[str, str, str]]] = {}


def _failure(row: AttemptRow, holdout: set[str]) -> tuple[str, str, str]:
    """_failure_of, once per row: the store hands out the same object for a row it read before."""
    hit = _FAILURES.get(id(row))
    if hit is not None and hit[0] is row and hit[1] == holdout:
        return hit[2]
    found = _failure_of(row, holdout)
    if len(_FAILURES) >= 8192:
        _FAILURES.clear()
    _FAILURES[id(row)] = (row, frozenset(holdout), found)
    return found


def _failure_of(row: AttemptRow, holdout: set[str]) -> tuple[str, str, str]:
    """(category, signature, representative message) of one failed attempt."""
    outcome = row.outcome.value if row.outcome else "unknown"
    reason = _UNCHANGED.sub("", row.reason)  # a repair that sent the failing program back: the same mistake
    text = "\n".join(t for t in (reason, row.details.get("eval_reason", ""), row.details.get("log", "")) if t)
    if row.outcome is Outcome.COMPILE_ERROR:
        line = first_error_line(text)
        return outcome, normalise(line), _short_paths(_LOCATION.sub("", line))
    if row.outcome in (Outcome.INVALID, Outcome.OVERFIT):
        bad = [c for c in row.cases.values() if not c.ok]
        if row.outcome is Outcome.OVERFIT or any(c.case in holdout for c in bad):
            return Outcome.OVERFIT.value, HOLDOUT_SIGNATURE, "right on the search cases, wrong on " + HIDDEN
        if bad:
            words = " ".join(normalise(bad[0].error or "wrong result").split()[:5])
            return outcome, f"{bad[0].case}: {words}", f"{bad[0].case}: {bad[0].error or 'wrong result'}"
        line = first_error_line(text)
        return outcome, " ".join(normalise(line).split()[:6]), line
    if row.outcome is Outcome.SCREEN_REJECTED:
        rule = str(row.details.get("rule") or first_error_line(reason))
        return outcome, _NUMBER.sub("N", rule), reason or rule
    if row.outcome is Outcome.SLOWER:
        strategy = row.strategy or "(no strategy given)"
        ci = f" [{row.ci_low:.2f}, {row.ci_high:.2f}]" if row.ci_low is not None and row.ci_high is not None else ""
        won = f"x{row.speedup:.2f}{ci}: " if row.speedup is not None else ""
        return outcome, normalise(strategy.lower()), won + strategy
    if row.outcome is Outcome.DUPLICATE:
        return outcome, "duplicate", row.reason or "proposed code identical to an earlier attempt"
    line = first_error_line(text)
    return outcome, normalise(line), _short_paths(line)


def _worked(rows: list[AttemptRow], holdout: set[str], scrub) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "outcome": r.outcome.value,
            "strategy": scrub(r.strategy),
            "speedup": r.speedup,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "best_cases": [c for c in r.decision.get("best_cases", []) if c not in holdout],
            "commit": r.commit,
        }
        for r in rows
        if r.outcome in (Outcome.ACCEPTED, Outcome.SPECIALIST)
    ]


def failed_turns(row: AttemptRow) -> list[AttemptRow]:
    """The turns before an attempt's last (repair.py), each as a row of its own: a repaired failure is a
    lesson too. The row itself is the last turn."""
    turns = [t for t in (row.details.get("turns") or [])[:-1] if isinstance(t, dict) and t.get("outcome")]
    return [dataclasses.replace(row, outcome=Outcome(t["outcome"]), reason=str(t.get("reason") or ""), cases={},
                                details={}, strategy=str(t.get("strategy") or ""), speedup=None, ci_low=None,
                                ci_high=None) for t in turns]


def _failing(rows: list[AttemptRow], holdout: set[str], scrub) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in (turn for row in rows for turn in [*failed_turns(row), row]):
        if r.outcome is None or not r.outcome.is_failure:
            continue
        category, signature, message = _failure(r, holdout)
        g = groups.setdefault((category, signature), {"category": category, "signature": scrub(signature),
                                                      "count": 0, "attempts": []})
        g["count"] += 1
        g["attempts"].append(r.id)
        g["last_attempt"] = r.id
        g["message"] = _cap(scrub(message), MESSAGE_CHARS)  # rows come in id order: the latest wins
    return sorted(groups.values(), key=lambda g: (-g["count"], -g["last_attempt"]))


def _next_ideas(details: dict[str, Any]) -> list[str]:
    ideas = details.get("next_ideas") or []
    return [ideas] if isinstance(ideas, str) else [str(i) for i in ideas]


def _unexplored(rows: list[AttemptRow], experiment: Experiment, scrub) -> list[dict[str, Any]]:
    proposals = [(idea, None) for idea in experiment.config.ideas]
    proposals += [(idea, r.id) for r in rows for idea in _next_ideas(r.details)]
    tried = [r for r in rows if r.outcome is None or r.outcome.was_tried]
    tried_text = [_keywords(r.strategy + " " + " ".join(r.tags)) for r in tried]
    tried_tags = {t.strip().lower() for r in tried for t in r.tags}
    out, seen = [], set()
    for idea, source in proposals:
        idea = " ".join(idea.split())
        key = idea.lower()
        if not idea or key in seen:
            continue
        seen.add(key)
        words = _keywords(idea)
        # Explored when one attempt's strategy/tags carry at least half the idea's key words.
        need = math.ceil(len(words) / 2)
        if key in tried_tags or (words and any(len(words & t) >= need for t in tried_text)):
            continue
        out.append({"idea": scrub(idea), "suggested_by": source})
    return out


def build_memory(store: Store, experiment: Experiment, window: int = WINDOW) -> dict:
    """worked (every winner) / failing and unexplored (the latest `window` attempts), from the store.

    The window keeps the per-attempt cost flat however long the search runs. The memory written
    after an attempt is what the next attempt's prompt reads: it is built once while the store
    has not changed in between.
    """
    key = (store.fingerprint(), store.get_meta("insights"), experiment.root, window)
    cached = _BUILT.get(store)
    if cached is not None and cached[0] == key:
        return cached[1]
    memory = _build(store, experiment, window)
    _BUILT[store] = (key, memory)
    return memory


_BUILT: weakref.WeakKeyDictionary[Store, tuple[tuple, dict]] = weakref.WeakKeyDictionary()


def _build(store: Store, experiment: Experiment, window: int) -> dict:
    holdout = set(experiment.holdout_cases)
    scrub = _scrubber(holdout)
    recent = [r for r in reversed(store.attempts(limit=window, newest_first=True, light=True)) if r.outcome is not None]
    seen = {r.id for r in recent}
    rows = sorted([*recent, *(w for w in store.winners() if w.id not in seen)], key=lambda r: r.id)
    return {
        "worked": _worked(rows, holdout, scrub),
        "failing": _failing(rows, holdout, scrub),
        "unexplored": _unexplored(rows, experiment, scrub),
        # The model's own periodic summary (--reflect-every), kept as bullet lines.
        "insights": [scrub(ln.strip("-* ").strip()) for ln in (store.get_meta("insights") or "").splitlines()
                     if ln.strip("-* ").strip()][:10],
    }


# --- rendering ---

def _worked_line(w: dict[str, Any]) -> str:
    win = ""
    if w.get("speedup") is not None:
        win = f" x{w['speedup']:.2f}"
        if w.get("ci_low") is not None and w.get("ci_high") is not None:
            win += f" [{w['ci_low']:.2f}, {w['ci_high']:.2f}]"
    best = f"; best on {', '.join(w['best_cases'])}" if w.get("best_cases") else ""
    return f"- #{w['id']} {w['outcome']}{win}: {w.get('strategy') or '(no strategy given)'}{best}"


def _failing_line(f: dict[str, Any]) -> str:
    return f"- {f['count']}× {f['category']}: {f['message'] or f['signature']} (last #{f['last_attempt']})"


def _unexplored_line(u: dict[str, Any]) -> str:
    by = f" (suggested by #{u['suggested_by']})" if u.get("suggested_by") is not None else ""
    return f"- {u['idea']}{by}"


def render_memory_md(memory: dict, max_chars: int) -> str:
    """Compact markdown with three sections, never longer than max_chars.

    Lines are taken round-robin from the sections in priority order (newest wins, most frequent
    failures, ideas in order) until the next line would not fit; the rest is counted, not shown.
    """
    sections = [
        *([("## Insights", [_cap(f"- {i}", LINE_CHARS) for i in memory["insights"]])]
          if memory.get("insights") else []),
        ("## Worked", [_cap(_worked_line(w), LINE_CHARS) for w in reversed(memory.get("worked", []))]),
        ("## Keeps failing", [_cap(_failing_line(f), LINE_CHARS) for f in memory.get("failing", [])]),
        ("## Unexplored", [_cap(_unexplored_line(u), LINE_CHARS) for u in memory.get("unexplored", [])]),
    ]
    head = "# Memory\n"
    prefix = [[0] for _ in sections]
    for i, (_, lines) in enumerate(sections):
        for ln in lines:
            prefix[i].append(prefix[i][-1] + len(ln) + 1)

    def tail(i: int, k: int) -> str:
        left = len(sections[i][1]) - k
        return f"- … and {left} more\n" if left else ("- (nothing yet)\n" if not sections[i][1] else "")

    def size(ks: list[int]) -> int:
        return len(head) + sum(1 + len(t) + 1 + prefix[i][k] + len(tail(i, k))
                               for i, ((t, _), k) in enumerate(zip(sections, ks, strict=True)))

    ks, open_ = [0] * len(sections), [bool(lines) for _, lines in sections]
    while any(open_):
        for i in range(len(sections)):
            if not open_[i]:
                continue
            trial = ks[:i] + [ks[i] + 1] + ks[i + 1:]
            if size(trial) <= max_chars:
                ks = trial
                open_[i] = ks[i] < len(sections[i][1])
            else:
                open_[i] = False
    text = head + "".join(
        "\n" + title + "\n" + "".join(ln + "\n" for ln in lines[:k]) + tail(i, k)
        for i, ((title, lines), k) in enumerate(zip(sections, ks, strict=True))
    )
    return text[:max_chars]  # only bites when even the bare headings do not fit


def write_memory(store: Store, experiment: Experiment) -> dict:
    """Regenerate MEMORY.json and MEMORY.md in the experiment folder; returns the memory."""
    memory = build_memory(store, experiment)
    write_atomic(experiment.root / MEMORY_JSON, json.dumps(memory, indent=2) + "\n")
    chars = experiment.config.prompt.memory_chars or DEFAULT_MD_CHARS
    write_atomic(experiment.root / MEMORY_MD, render_memory_md(memory, chars))
    return memory
