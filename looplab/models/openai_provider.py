"""OpenAI chat completions through the official SDK; also any OpenAI-compatible server via base_url
(vLLM, Ollama, llama.cpp server, LM Studio).

The SDK takes about 0.3 s to import, so a provider loads it and builds its client in a thread of its
own from the moment it is made, while the run opens its store and evaluates the baseline; the first
call waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import threading
import time
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlparse

from looplab.errors import UserError
from looplab.models.base import ModelError
from looplab.models.retry import RetryPolicy, call_with_retries, classify_http_error
from looplab.models.usage import estimate_cost
from looplab.records import Message, Reply, Usage

OFFICIAL_HOST = "api.openai.com"


class OpenAIProvider:
    def __init__(
        self, model: str, *, api_key: str, base_url: str | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url
        self.retry = retry or RetryPolicy()
        self.official = base_url is None or urlparse(base_url).hostname == OFFICIAL_HOST
        self._vendor = "OpenAI" if self.official else f"the server at {base_url}"
        self._url = base_url or f"https://{OFFICIAL_HOST}/v1"
        if importlib.util.find_spec("openai") is None:
            raise UserError(f"model spec {self.name!r}: the openai package is not installed "
                            "(fix: pip install openai)")
        self._sdk: Future[tuple[Any, Any]] = _in_background(_load_sdk, api_key, base_url)

    async def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        timeout_s: float = 300.0,
    ) -> Reply:
        """One chat completion. timeout_s bounds each attempt; retries follow self.retry."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if temperature is not None:
            request["temperature"] = temperature
        if max_tokens is not None:
            # Newer OpenAI models reject max_tokens; many compatible servers only know max_tokens.
            request["max_completion_tokens" if self.official else "max_tokens"] = max_tokens
        if stop:
            request["stop"] = stop

        openai, client = await self._loaded()

        async def attempt() -> Any:
            try:
                return await client.chat.completions.create(**request, timeout=timeout_s)
            except (openai.APIError, ValueError) as e:  # ValueError: a body that is not JSON or not UTF-8
                raise classify_http_error(
                    e, vendor=self._vendor, key_env="OPENAI_API_KEY", url=self._url, model=self.model
                ) from None

        started = time.monotonic()
        response = await call_with_retries(attempt, self.retry, name=self.name, timeout_s=timeout_s)
        latency = time.monotonic() - started
        if not isinstance(getattr(response, "choices", None), list):  # a 200 that is not a completion
            raise ModelError(
                f"{self.name}: {self._vendor} sent a reply that is not a chat completion "
                f"(fix: check {self._url} speaks the OpenAI chat-completions API)"
            )
        if not response.choices:
            raise ModelError(f"{self.name}: {self._vendor} returned no choices", retryable=True)
        choice = response.choices[0]
        return Reply(
            text=choice.message.content or "",
            usage=self._usage(response.usage),
            model=self.name,
            latency_s=latency,
            finish_reason=choice.finish_reason,
        )

    def _usage(self, raw: Any) -> Usage:
        if raw is None:  # some compatible servers omit usage: tokens unknown, so the cost is too
            return Usage(cost_usd=None)
        details = getattr(raw, "prompt_tokens_details", None)
        usage = Usage(
            prompt_tokens=raw.prompt_tokens or 0,
            completion_tokens=raw.completion_tokens or 0,
            cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
        )
        usage.cost_usd = estimate_cost("openai", self.model, usage, base_url=self.base_url)
        return usage

    async def _loaded(self) -> tuple[Any, Any]:
        """(the openai module, the client), once the background load has finished."""
        try:
            return await asyncio.wrap_future(self._sdk)
        except ImportError as e:  # an install that is broken, not absent (that is caught in __init__)
            raise UserError(f"{self.name}: the openai package failed to load: {e} "
                            "(fix: pip install --force-reinstall openai)") from None

    async def aclose(self) -> None:
        if self._sdk.done() and self._sdk.exception() is None:  # a client never loaded holds no connections
            await self._sdk.result()[1].close()


def _load_sdk(api_key: str, base_url: str | None) -> tuple[Any, Any]:
    import openai

    # max_retries=0: call_with_retries is the only retry policy.
    client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
    client.chat.completions  # noqa: B018 — the SDK builds its resources on first use: here, off the first call's path
    with contextlib.suppress(ImportError):  # the HTTP stack's asyncio backend, else imported by the first request
        importlib.import_module("anyio._backends._asyncio")
    return openai, client


def _in_background(load: Any, *args: Any) -> Future:
    """Run load(*args) in a thread; its result (or exception) in a Future. Not a daemon thread: an
    interpreter that exits meanwhile waits for the import rather than tearing it down half done."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(load(*args))
        except BaseException as e:  # noqa: BLE001 — the caller re-raises it where it awaits the result
            future.set_exception(e)

    threading.Thread(target=run, name="looplab-openai-load").start()
    return future
