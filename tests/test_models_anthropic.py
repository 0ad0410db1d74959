"""Anthropic provider against a real HTTP server on 127.0.0.1 speaking the messages protocol."""

from __future__ import annotations

import asyncio

import pytest
from wire_servers import AnthropicServer, recording_policy

from looplab.models import ModelError, provider_from_spec
from looplab.records import Message

MESSAGES = [Message("system", "You write C."), Message("user", "Make matmul faster.")]
KEY = {"ANTHROPIC_API_KEY": "sk-ant-test"}


def complete(provider, **kwargs):
    return asyncio.run(provider.complete(MESSAGES, **{"timeout_s": 5.0, **kwargs}))


def anthropic_provider(server, policy=None):
    return provider_from_spec("anthropic:claude-haiku-4-5", base_url=server.url, retry=policy, env=KEY)


def test_completion_moves_system_out_and_counts_cache_tokens_as_prompt():
    usage = {"input_tokens": 50, "output_tokens": 300, "cache_read_input_tokens": 2000,
             "cache_creation_input_tokens": 100}
    with AnthropicServer(["static void f(void) {}"], usage=usage) as server:
        reply = complete(anthropic_provider(server), temperature=0.7, max_tokens=1234, stop=["###"])
    assert reply.text == "static void f(void) {}"
    assert reply.model == "anthropic:claude-haiku-4-5"
    assert reply.finish_reason == "end_turn"
    assert reply.usage.prompt_tokens == 50 + 2000 + 100
    assert reply.usage.completion_tokens == 300
    assert reply.usage.cached_tokens == 2000
    assert reply.usage.cost_usd is None  # self-hosted endpoint: price unknown
    [request] = server.requests
    assert request.path == "/v1/messages"
    assert request.body["system"] == "You write C."
    assert request.body["messages"] == [{"role": "user", "content": "Make matmul faster."}]
    assert request.body["max_tokens"] == 1234
    assert "temperature" not in request.body  # the messages API no longer takes it
    assert request.body["stop_sequences"] == ["###"]
    assert "sk-ant-test" in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))


def test_max_tokens_has_a_default_because_the_api_requires_it():
    with AnthropicServer(["ok"]) as server:
        complete(anthropic_provider(server))
    body = server.requests[0].body
    assert body["max_tokens"] > 0
    assert "temperature" not in body and "stop_sequences" not in body


def test_overloaded_and_rate_limited_are_retried():
    policy, waits = recording_policy()
    with AnthropicServer(["finally"], fail_first=[529, 429], retry_after="1") as server:
        reply = complete(anthropic_provider(server, policy))
    assert reply.text == "finally"
    assert len(server.requests) == 3
    assert waits[0] <= 0.01 and waits[1] == 1.0


def test_bad_key_fails_at_once_naming_the_env_var():
    policy, waits = recording_policy()
    with AnthropicServer(["never"], fail_first=[401]) as server:
        with pytest.raises(ModelError) as err:
            complete(anthropic_provider(server, policy))
    assert not err.value.retryable
    assert "rejected the API key" in str(err.value) and "fix: set ANTHROPIC_API_KEY" in str(err.value)
    assert len(server.requests) == 1 and waits == []


def test_slow_server_times_out_then_gives_up():
    policy, _ = recording_policy(max_attempts=2)
    with AnthropicServer(["too late"], delay_s=30) as server:
        with pytest.raises(ModelError) as err:
            complete(anthropic_provider(server, policy), timeout_s=0.3)
    # The timeout bounds the call with its retries: a try that used it all up is not repeated.
    assert err.value.retryable and "gave up after 1 attempt" in str(err.value)
    assert len(server.requests) == 1


class NotAnAPIServer(AnthropicServer):
    def reply_body(self, request, text, n):
        return text  # valid JSON, but a string where a message object belongs


def test_a_server_that_does_not_speak_the_protocol_is_a_clear_error():
    with NotAnAPIServer(["<html>It works!</html>"]) as server:
        with pytest.raises(ModelError) as err:
            complete(anthropic_provider(server))
    assert not err.value.retryable and "not a message" in str(err.value)
