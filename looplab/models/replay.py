"""Replay recorded replies in order from a JSONL file: deterministic runs, tests and demos, no model.

Format, one JSON object per line (blank lines ignored):
    {"content": "...", "usage": {"prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 0}}
usage is optional (zeros). A replay spends nothing, so every reply costs 0.0.
A reply marked "repair": true answers a repair turn (the model was shown its failure); a repair turn
asked where the file has none recorded ends the attempt with its failure, as when it was recorded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

from looplab.errors import UserError
from looplab.filesets import write_atomic
from looplab.models.base import NoRepair, RepliesExhausted
from looplab.records import Message, Reply, Usage

TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens")
IGNORED_USAGE_FIELDS = ("total_tokens", "cost_usd")  # what Usage.to_dict() adds; accepted, not used


class ReplayProvider:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"replay:{path}"
        self._replies = load_replies(self.path)
        self._repairs = repair_marks(self.path)
        self._next = 0
        self.received: list[list[Message]] = []  # the prompts asked, in order, for tests and debugging

    @property
    def remaining(self) -> int:
        return len(self._replies) - self._next

    async def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        timeout_s: float = 300.0,
    ) -> Reply:
        repairing = any(m.role == "assistant" for m in messages)  # a conversation that goes on
        recorded = self._next < len(self._replies) and self._repairs[self._next]
        if repairing and not recorded:
            raise NoRepair(f"{self.path}: no repair recorded after reply {self._next}")
        if self._next >= len(self._replies):
            raise RepliesExhausted(f"{self.path}: all {len(self._replies)} replies used")
        while self._repairs[self._next] and not repairing:  # a repair this run does not ask for
            self._next += 1
            if self._next >= len(self._replies):
                raise RepliesExhausted(f"{self.path}: all {len(self._replies)} replies used")
        text, usage = self._replies[self._next]
        self._next += 1
        self.received.append(list(messages))
        # A fresh Usage per reply: callers may add to or mutate it.
        return Reply(text=text, usage=dataclasses.replace(usage), model=self.name, latency_s=0.0, finish_reason="stop")


def load_replies(path: Path) -> list[tuple[str, Usage]]:
    """Read and check the whole file now, so a bad line fails before the run starts."""
    try:
        # split("\n"), not splitlines(): content may hold U+2028 and friends, which JSON leaves raw.
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise UserError(f"{path}: replay file not found (fix: check the path after 'replay:')") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read replay file: {e} (fix: point at a UTF-8 JSONL file)") from None
    replies = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            replies.append(_parse_line(path, number, line))
    return replies


def repair_marks(path: Path) -> list[bool]:
    """For each reply (after load_replies checked the file): does it answer a repair turn?"""
    lines = [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()]
    return [json.loads(ln).get("repair") is True for ln in lines]


def _parse_line(path: Path, number: int, line: str) -> tuple[str, Usage]:
    where = f"{path}: line {number}"
    fix = '(fix: one JSON object per line, e.g. {"content": "...", "usage": {"prompt_tokens": 1}})'
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg}) {fix}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("content"), str):
        raise UserError(f"{where}: needs a string field 'content' {fix}")
    raw_usage = obj.get("usage") or {}
    if not isinstance(raw_usage, dict):
        raise UserError(f"{where}: 'usage' must be an object {fix}")
    unknown = set(raw_usage) - set(TOKEN_FIELDS) - set(IGNORED_USAGE_FIELDS)
    if unknown:
        raise UserError(f"{where}: unknown usage field(s) {sorted(unknown)} (fix: use {', '.join(TOKEN_FIELDS)})")
    counts = {}
    for key in TOKEN_FIELDS:
        value = raw_usage.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"{where}: usage.{key} must be a whole number >= 0, got {value!r} {fix}")
        counts[key] = value
    return obj["content"], Usage(**counts, cost_usd=0.0)


def write_replies(path: str | Path, replies: Iterable[tuple]) -> int:
    """Write replies in the format ReplayProvider reads; returns how many. Atomic: a crash leaves no half file.

    Each item: (text, usage) or (text, usage, is_repair)."""
    lines = []
    for text, usage, *repair in replies:
        tokens = {key: getattr(usage, key) for key in TOKEN_FIELDS}
        line = {"content": text, "usage": tokens, **({"repair": True} if repair and repair[0] else {})}
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    write_atomic(Path(path), "".join(lines), encoding="utf-8")
    count = len(lines)
    return count
