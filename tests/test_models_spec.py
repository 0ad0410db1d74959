"""Spec parsing, default model choice, cost estimation and the retry policy's parts."""

from __future__ import annotations

import asyncio
import email.utils
import subprocess
import sys
import time

import pytest
from wire_servers import recording_policy

from looplab.errors import UserError
from looplab.models import ModelError, default_model_spec, provider_from_spec
from looplab.models.anthropic_provider import AnthropicProvider
from looplab.models.command import CommandProvider
from looplab.models.openai_provider import OpenAIProvider
from looplab.models.replay import ReplayProvider
from looplab.models.retry import RetryPolicy, TransientError, call_with_retries, parse_retry_after
from looplab.models.usage import estimate_cost
from looplab.records import Usage

# --- provider_from_spec ---


def test_specs_pick_their_provider(tmp_path):
    replies = tmp_path / "r.jsonl"
    replies.write_text('{"content": "x"}\n')
    assert isinstance(provider_from_spec("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "k"}), OpenAIProvider)
    assert isinstance(provider_from_spec("anthropic:claude-haiku-4-5", env={"ANTHROPIC_API_KEY": "k"}),
                      AnthropicProvider)
    command = provider_from_spec("command: llm -m x:y ")
    assert isinstance(command, CommandProvider) and command.command == "llm -m x:y"
    assert isinstance(provider_from_spec(f"replay:{replies}"), ReplayProvider)


def test_an_openai_sdk_that_is_missing_or_broken_is_one_line(monkeypatch):
    from looplab.models import openai_provider
    from looplab.records import Message

    monkeypatch.setattr(openai_provider.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"the openai package is not installed \(fix: pip install openai\)"):
        provider_from_spec("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "k"})
    monkeypatch.undo()

    def broken(*_):
        raise ImportError("cannot import name 'AsyncOpenAI'")

    monkeypatch.setattr(openai_provider, "_load_sdk", broken)
    provider = provider_from_spec("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "k"})  # loads in the background
    with pytest.raises(UserError, match=r"failed to load: cannot import name 'AsyncOpenAI' \(fix: pip install"):
        asyncio.run(provider.complete([Message("user", "hi")]))
    asyncio.run(provider.aclose())  # nothing loaded, nothing to close


def test_a_missing_openai_key_names_the_env_var():
    with pytest.raises(UserError) as err:
        provider_from_spec("openai:gpt-4o-mini", env={})
    assert "OPENAI_API_KEY is not set" in str(err.value) and "fix:" in str(err.value)


def test_a_missing_anthropic_key_names_the_env_var():
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY is not set"):
        provider_from_spec("anthropic:claude-haiku-4-5", env={"OPENAI_API_KEY": "k"})


def test_a_base_url_from_the_environment_needs_no_key():
    provider = provider_from_spec("openai:qwen", env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert provider.base_url == "http://127.0.0.1:8000/v1" and not provider.official
    explicit = provider_from_spec("openai:qwen", base_url="http://h:1/v1", env={"OPENAI_BASE_URL": "http://x/v1"})
    assert explicit.base_url == "http://h:1/v1"  # the argument beats the environment
    anthropic = provider_from_spec("anthropic:m", env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    assert anthropic.base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize("spec", ["gpt-4o", "huggingface:x", "", "OPENAI:x"])
def test_unknown_providers_list_the_valid_forms(spec):
    with pytest.raises(UserError) as err:
        provider_from_spec(spec, env={"OPENAI_API_KEY": "k"})
    assert "unknown provider" in str(err.value)
    assert "openai:MODEL" in str(err.value) and "replay:FILE.jsonl" in str(err.value)


@pytest.mark.parametrize("spec", ["openai:", "anthropic: ", "command:", "replay:"])
def test_empty_names_are_user_errors(spec):
    with pytest.raises(UserError, match="is empty"):
        provider_from_spec(spec, env={"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"})


def test_a_base_url_with_a_provider_that_cannot_use_it_is_refused():
    with pytest.raises(UserError, match="only to openai: and anthropic:"):
        provider_from_spec("command:cat", base_url="http://127.0.0.1:1/v1")


def test_every_registered_scheme_is_named_in_the_valid_forms_and_no_sdk_loads_before_its_spec_is_used():
    code = ("import sys, looplab.models as m, looplab.cli; "
            "print(sorted(k for k in m.PROVIDERS if k not in m.VALID_FORMS)); "
            "print(sorted(n for n in ('openai', 'anthropic', 'llama_cpp') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


# --- default_model_spec ---


@pytest.mark.parametrize(
    "env, spec, why",
    [
        ({"LOOPLAB_MODEL": "command:cat", "OPENAI_API_KEY": "k"}, "command:cat", "LOOPLAB_MODEL is set"),
        ({"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}, "openai:gpt-4o-mini", "OPENAI_API_KEY is set"),
        ({"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": ""}, "anthropic:claude-haiku-4-5", "ANTHROPIC_API_KEY is set"),
        ({"LOOPLAB_MODEL": "  "}, "local", "no LOOPLAB_MODEL, OPENAI_API_KEY or ANTHROPIC_API_KEY is set"),
    ],
)
def test_default_model_spec_follows_the_documented_order(env, spec, why):
    assert default_model_spec(env) == (spec, why)


def test_default_models_are_priced():
    for spec, _ in (default_model_spec({"OPENAI_API_KEY": "k"}), default_model_spec({"ANTHROPIC_API_KEY": "k"})):
        provider, model = spec.split(":", 1)
        assert estimate_cost(provider, model, Usage(1000, 1000)) > 0, spec


# --- estimate_cost ---


def test_a_known_model_is_priced_and_cached_tokens_are_cheaper():
    full = estimate_cost("openai", "gpt-4o-mini", Usage(prompt_tokens=1_000_000, completion_tokens=0))
    cached = estimate_cost("openai", "gpt-4o-mini", Usage(prompt_tokens=1_000_000, cached_tokens=1_000_000))
    assert full is not None and cached is not None
    assert 0 < cached < full
    assert estimate_cost("openai", "gpt-4o-mini", Usage(0, 1_000_000)) > full  # output costs more than input


def test_anthropic_cache_writes_cost_more_than_plain_input():
    usage = Usage(prompt_tokens=1_000_000)
    plain = estimate_cost("anthropic", "claude-haiku-4-5", usage)
    written = estimate_cost("anthropic", "claude-haiku-4-5", usage, cache_write_tokens=1_000_000)
    assert plain is not None and written is not None and written > plain > 0


def test_unknown_prices_are_none_not_zero():
    usage = Usage(1000, 1000)
    assert estimate_cost("openai", "no-such-model-2099", usage) is None
    assert estimate_cost("command", "llm", usage) is None
    assert estimate_cost("local", "gpt-4o-mini", usage) is None
    # A self-hosted server calling its model gpt-4o-mini is not OpenAI's gpt-4o-mini.
    assert estimate_cost("openai", "gpt-4o-mini", usage, base_url="http://127.0.0.1:8000/v1") is None


def test_the_official_base_url_prices_like_no_base_url():
    usage = Usage(1000, 1000)
    assert estimate_cost("openai", "gpt-4o-mini", usage, base_url="https://api.openai.com/v1") == estimate_cost(
        "openai", "gpt-4o-mini", usage
    )


# --- retry parts ---


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"retry-after": date}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0)
    for retry, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (2, 4), (2, 4)], start=1):
        assert low <= policy.delay(retry) <= high


def test_call_with_retries_counts_attempts_and_passes_final_errors_through():
    policy, waits = recording_policy(max_attempts=4)
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("busy")
        return "done"

    assert asyncio.run(call_with_retries(flaky, policy, name="p:m", timeout_s=5)) == "done"
    assert len(calls) == 3 and len(waits) == 2

    async def refused():
        calls.append(1)
        raise ModelError("bad request (fix: x)")

    calls.clear()
    with pytest.raises(ModelError, match=r"^p:m: bad request \(fix: x\)$") as err:
        asyncio.run(call_with_retries(refused, policy, name="p:m", timeout_s=5))
    assert not err.value.retryable and len(calls) == 1


def test_a_single_attempt_policy_does_not_retry():
    policy, waits = recording_policy(max_attempts=1)

    async def busy():
        raise TransientError("busy")

    with pytest.raises(ModelError, match=r"gave up after 1 attempt in \d+s: busy"):
        asyncio.run(call_with_retries(busy, policy, name="p:m", timeout_s=5))
    assert waits == []
