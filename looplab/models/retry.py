"""The one retry policy of every network provider: backoff with jitter, Retry-After, clear errors.

Providers turn SDK exceptions into ModelError with `classify_http_error`, then run each call
through `call_with_retries`. The SDKs' own retries are disabled (max_retries=0) so this is the
only policy: retry 408/409/429/5xx, timeouts, connection errors and replies that cannot be read;
fail at once on other 4xx. The timeout bounds the whole call, its retries and waits included.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from looplab.models.base import ModelAccessError, ModelError

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429})  # plus every status >= 500
# Where a retry is announced (the run sets its progress line); None: silently.
retry_notes: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("retry_notes",
                                                                                          default=None)


class TransientError(ModelError):
    """A retryable ModelError that may carry the server's Retry-After, in seconds."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message, retryable=True)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 1.0  # first backoff; doubles each retry
    max_delay_s: float = 60.0
    max_retry_after_s: float = 120.0  # cap on a server's Retry-After so a bad header cannot stall a run
    # Injected so tests can record the waits instead of timing them.
    sleep: Callable[[float], Awaitable[Any]] = field(default=asyncio.sleep, compare=False)

    def delay(self, retry_number: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (retry_number - 1))
        backoff *= random.uniform(0.5, 1.0)  # jitter: concurrent callers do not retry in lockstep
        if retry_after_s is not None:
            return max(backoff, min(retry_after_s, self.max_retry_after_s))
        return backoff


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, *, name: str, timeout_s: float
) -> T:
    """Run attempt() until it succeeds, raises a non-retryable ModelError, or tries or time run out.

    timeout_s bounds the whole call: every try, and the waits between them (the SDK's read timeout
    alone does not bound a server that trickles bytes). Raises ModelError prefixed with `name`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: ModelError | None = None
    tries = 0
    for number in range(1, max(1, policy.max_attempts) + 1):
        if last is not None:
            wait = policy.delay(number - 1, getattr(last, "retry_after_s", None))
            left = deadline - loop.time()
            if wait >= left:
                break
            _announce(f"{name}: {last}; retry {number - 1} of {policy.max_attempts - 1} in {wait:.1f}s "
                      f"({left:.0f}s left of the {timeout_s:g}s model timeout)")
            await policy.sleep(wait)
        tries = number
        try:
            async with asyncio.timeout_at(deadline):
                return await attempt()
        except TimeoutError:
            last = TransientError(f"no reply within the {timeout_s:g}s model timeout")
            break
        except ModelError as e:
            if not e.retryable:
                kind = ModelAccessError if isinstance(e, ModelAccessError) else ModelError
                raise kind(f"{name}: {e}", retryable=False) from None
            last = e
    spent = loop.time() - deadline + timeout_s
    raise ModelError(f"{name}: gave up after {tries} attempt{'s' * (tries > 1)} in {spent:.0f}s: {last} "
                     "(fix: check the server, or raise --model-timeout, which bounds a call and its retries)",
                     retryable=True)


def _announce(text: str) -> None:
    note = retry_notes.get()
    if note is not None:
        note(text)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from Retry-After (seconds or HTTP date) or retry-after-ms; None when absent or unreadable."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(body: object) -> str:
    """The human part of an error body ({"error": {"message": ...}} in both vendors' shapes), one line."""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            body = inner
        msg = body.get("message") if isinstance(body, dict) else None
        text = str(msg) if msg else str(body)
    else:
        text = "" if body is None else str(body)
    text = " ".join(text.split())
    return text[:300] + ("…" if len(text) > 300 else "")


def classify_http_error(exc: BaseException, *, vendor: str, key_env: str, url: str, model: str) -> ModelError:
    """Turn an SDK exception (openai or anthropic: same shapes) into a one-line ModelError.

    vendor names who answered ("OpenAI", "the server at http://..."), key_env the env var of the key.
    """
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        detail = server_message(getattr(exc, "body", None))
        said = f": {detail}" if detail else ""
        headers = getattr(getattr(exc, "response", None), "headers", None)
        code = getattr(exc, "code", None) or _error_type(getattr(exc, "body", None))
        if status < 400:
            return ModelError(f"{vendor} sent a reply looplab could not read ({status}){said} (fix: check {url} speaks this API)")
        if status == 429 and code == "insufficient_quota":
            return ModelAccessError(f"{vendor} says the quota is used up{said} (fix: check the account's billing)")
        if status in RETRYABLE_STATUS or status >= 500:
            return TransientError(f"{vendor} answered {status}{said}", parse_retry_after(headers))
        if status == 401:
            return ModelAccessError(f"{vendor} rejected the API key{said} (fix: set {key_env} to a valid key)")
        if status == 403:
            return ModelAccessError(f"{vendor} refused access{said} (fix: check the key's permissions for {model})")
        if status == 404:
            return ModelError(
                f"{vendor} answered 404 for model {model}{said} (fix: check the model name and the base URL)"
            )
        return ModelError(f"{vendor} rejected the request ({status}){said} (fix: check the model and options)")
    kind = type(exc).__name__
    if isinstance(exc, ValueError):  # a body that is not JSON, not UTF-8, or not the API's shape
        return TransientError(f"{vendor} sent a reply that could not be read ({kind}: "
                              f"{' '.join(str(exc).split())[:200]})")
    if "Timeout" in kind:
        return TransientError(f"{vendor} did not answer in time (fix: raise the timeout or check {url})")
    if "Connection" in kind:
        return TransientError(f"could not connect to {url}: {exc} (fix: check the network or the base URL)")
    return ModelError(f"{vendor}: unexpected {kind}: {' '.join(str(exc).split())[:300]}")


def _error_type(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            body = inner
        if isinstance(body, dict):
            code = body.get("code") or body.get("type")
            return str(code) if code else None
    return None
