"""A provider whose calls are priced at a rate the user gave (--price), not genai-prices' table."""

from __future__ import annotations

from dataclasses import replace

from looplab.models.base import ModelProvider
from looplab.models.usage import Price
from looplab.records import Message, Reply


class PricedProvider:
    """Wraps any provider; every reply's cost is recomputed from its tokens at `price`."""

    def __init__(self, inner: ModelProvider, price: Price) -> None:
        self.inner = inner
        self.price = price
        self.name = inner.name

    async def complete(self, messages: list[Message], **kwargs) -> Reply:
        reply = await self.inner.complete(messages, **kwargs)
        return replace(reply, usage=replace(reply.usage, cost_usd=self.price.cost(reply.usage)))

    def __getattr__(self, attr: str):  # n_threads, aclose, ... of the wrapped provider
        return getattr(self.inner, attr)
