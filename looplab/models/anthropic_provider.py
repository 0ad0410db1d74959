"""Anthropic messages API through the official SDK (base_url for a compatible proxy)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

import anthropic

from looplab.models.base import ModelError
from looplab.models.retry import RetryPolicy, call_with_retries, classify_http_error
from looplab.models.usage import estimate_cost
from looplab.records import Message, Reply, Usage

OFFICIAL_HOST = "api.anthropic.com"
DEFAULT_MAX_TOKENS = 8192  # the API requires max_tokens; every current model allows at least this


class AnthropicProvider:
    def __init__(
        self, model: str, *, api_key: str, base_url: str | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.model = model
        self.name = f"anthropic:{model}"
        self.base_url = base_url
        self.retry = retry or RetryPolicy()
        official = base_url is None or urlparse(base_url).hostname == OFFICIAL_HOST
        self._vendor = "Anthropic" if official else f"the server at {base_url}"
        self._url = base_url or f"https://{OFFICIAL_HOST}"
        # max_retries=0: call_with_retries is the only retry policy.
        self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)

    async def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        timeout_s: float = 300.0,
    ) -> Reply:
        """One message. System messages go to the top-level system field, as the API wants.

        temperature is not sent: the messages API (SDK 2.x) no longer has sampling parameters.
        """
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": m.role, "content": m.content} for m in messages if m.role != "system"],
        }
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        if system:
            request["system"] = system
        if stop:
            request["stop_sequences"] = stop

        async def attempt() -> Any:
            try:
                return await self._client.messages.create(**request, timeout=timeout_s)
            except (anthropic.APIError, ValueError) as e:  # ValueError: a body that is not JSON or not UTF-8
                raise classify_http_error(
                    e, vendor=self._vendor, key_env="ANTHROPIC_API_KEY", url=self._url, model=self.model
                ) from None

        started = time.monotonic()
        response = await call_with_retries(attempt, self.retry, name=self.name, timeout_s=timeout_s)
        latency = time.monotonic() - started
        if not isinstance(getattr(response, "content", None), list):  # a 200 that is not a message
            raise ModelError(
                f"{self.name}: {self._vendor} sent a reply that is not a message "
                f"(fix: check {self._url} speaks the Anthropic messages API)"
            )
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return Reply(
            text=text,
            usage=self._usage(response.usage),
            model=self.name,
            latency_s=latency,
            finish_reason=response.stop_reason,
        )

    def _usage(self, raw: Any) -> Usage:
        # Anthropic's input_tokens excludes cache reads and writes; looplab's prompt_tokens counts all input.
        cache_read = getattr(raw, "cache_read_input_tokens", None) or 0
        cache_write = getattr(raw, "cache_creation_input_tokens", None) or 0
        usage = Usage(
            prompt_tokens=(raw.input_tokens or 0) + cache_read + cache_write,
            completion_tokens=raw.output_tokens or 0,
            cached_tokens=cache_read,
        )
        usage.cost_usd = estimate_cost(
            "anthropic", self.model, usage, base_url=self.base_url, cache_write_tokens=cache_write
        )
        return usage

    async def aclose(self) -> None:
        await self._client.close()
