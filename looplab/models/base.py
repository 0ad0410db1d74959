"""The one small interface every model provider implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from looplab.records import Message, Reply


class ModelError(Exception):
    """A provider call failed. retryable: worth trying again (rate limit, 5xx, timeout)."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ModelAccessError(ModelError):
    """The provider refuses the key, the permission or the account (401, 403, no quota): no later call
    can succeed, so the run stops at once."""


class RepliesExhausted(Exception):
    """A finite provider (replay) has no more replies; the loop stops cleanly."""


class NoRepair(Exception):
    """A provider that replays a recorded run has no repair recorded here: the attempt ends with its failure."""


@runtime_checkable
class ModelProvider(Protocol):
    """complete() returns one Reply or raises ModelError / RepliesExhausted."""

    name: str  # "provider:model", as shown in records and SCORES

    async def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        timeout_s: float = 300.0,
    ) -> Reply: ...
