"""Tokens and cost: price a model call with genai-prices; None when the price is unknown, never a silent 0."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from looplab.errors import UserError
from looplab.records import Usage

# looplab provider name → genai-prices provider id; only these are priced (a local or CLI model is not).
PRICED_PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}


def estimate_cost(
    provider: str,
    model: str,
    usage: Usage,
    *,
    base_url: str | None = None,
    cache_write_tokens: int = 0,
) -> float | None:
    """US dollars for one call, or None when unknown.

    usage.prompt_tokens counts every input token, cached and cache-write ones included.
    base_url: where the call went; a host genai-prices does not know (a self-hosted server
    running a model with a famous name) gives None rather than the famous model's price.
    cache_write_tokens: the part of prompt_tokens written to a prompt cache (Anthropic prices it higher).
    """
    provider_id = PRICED_PROVIDERS.get(provider)
    if provider_id is None or not model:
        return None
    # genai-prices (with httpx) takes ~0.1 s to import: at the first price, not at launch.
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    tokens = PriceUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=cache_write_tokens,
    )
    where = {"provider_api_url": base_url} if base_url else {"provider_id": provider_id}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # price-data warnings are not the user's concern here
            price = calc_price(tokens, model, **where)
    except (LookupError, ValueError):
        return None
    return float(price.total_price)



@dataclass(frozen=True)
class Price:
    """USD per million tokens, for a model genai-prices cannot price (a proxy, a self-hosted server)."""

    input: float
    output: float
    cached_input: float | None = None  # None: cached input tokens cost the same as fresh ones

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((usage.prompt_tokens - cached) * self.input + cached * cached_rate
                + usage.completion_tokens * self.output) / 1e6


def parse_price(text: str) -> Price:
    """'0.15/0.60' or '0.15/0.60/0.075' (input/output[/cached input], USD per million tokens)."""
    parts = text.strip().split("/")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or any(not math.isfinite(v) or v < 0 for v in values):
        raise UserError(f"--price {text!r}: expected INPUT/OUTPUT[/CACHED] in USD per million tokens "
                        "(fix: e.g. --price 0.15/0.60)")
    return Price(*values)
