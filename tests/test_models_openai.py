"""OpenAI provider against a real HTTP server on 127.0.0.1 speaking the chat-completions protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time

import pytest
from wire_servers import OpenAIServer, recording_policy

from looplab.models import ModelError, provider_from_spec
from looplab.models.base import ModelAccessError
from looplab.records import Message

MESSAGES = [Message("system", "You write C."), Message("user", "Make matmul faster.")]


def complete(provider, **kwargs):
    return asyncio.run(provider.complete(MESSAGES, **{"timeout_s": 5.0, **kwargs}))


def openai_provider(server, policy=None, env=None, model="gpt-4o-mini"):
    return provider_from_spec(f"openai:{model}", base_url=server.url, retry=policy, env=env or {})


def test_completion_returns_text_usage_and_sends_the_request():
    usage = {"prompt_tokens": 1200, "completion_tokens": 340, "cached_tokens": 1024}
    with OpenAIServer(["```c\nint x;\n```"], usage=usage) as server:
        reply = complete(openai_provider(server), temperature=0.3, max_tokens=777, stop=["END"])
    assert reply.text == "```c\nint x;\n```"
    assert reply.model == "openai:gpt-4o-mini"
    assert reply.finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens) == (1200, 340, 1024)
    # A self-hosted server answering to a famous model name is not priced as that model.
    assert reply.usage.cost_usd is None
    assert reply.latency_s > 0
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == [
        {"role": "system", "content": "You write C."},
        {"role": "user", "content": "Make matmul faster."},
    ]
    assert request.body["temperature"] == 0.3
    assert request.body["max_tokens"] == 777
    assert request.body["stop"] == ["END"]
    assert request.headers["authorization"] == "Bearer not-needed"  # local servers need no key


def test_unset_options_are_not_sent_and_a_real_key_is_used():
    with OpenAIServer(["ok"]) as server:
        complete(openai_provider(server, env={"OPENAI_API_KEY": "sk-local-123"}))
    body = server.requests[0].body
    assert not {"temperature", "max_tokens", "max_completion_tokens", "stop"} & set(body)
    assert server.requests[0].headers["authorization"] == "Bearer sk-local-123"


def test_model_names_with_colons_reach_the_server_whole():
    with OpenAIServer(["ok"]) as server:
        reply = complete(openai_provider(server, model="qwen2.5-coder:7b"))
    assert server.requests[0].body["model"] == "qwen2.5-coder:7b"
    assert reply.model == "openai:qwen2.5-coder:7b"


def test_rate_limit_is_retried_and_retry_after_honoured():
    policy, waits = recording_policy()
    with OpenAIServer(["after the wait"], fail_first=[429], retry_after="2") as server:
        reply = complete(openai_provider(server, policy))
    assert reply.text == "after the wait"
    assert len(server.requests) == 2
    assert waits == [2.0]  # the server's Retry-After, not the 0.01 s backoff


def test_retry_after_is_capped():
    policy, waits = recording_policy(max_retry_after_s=3.0)
    with OpenAIServer(["ok"], fail_first=[429], retry_after="3600") as server:
        complete(openai_provider(server, policy))
    assert waits == [3.0]


def test_server_errors_are_retried_with_growing_jittered_backoff():
    policy, waits = recording_policy(base_delay_s=0.01)
    with OpenAIServer(["third time lucky"], fail_first=[500, 503]) as server:
        reply = complete(openai_provider(server, policy))
    assert reply.text == "third time lucky"
    assert len(server.requests) == 3
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02


def test_bad_key_fails_at_once_with_a_clear_message():
    policy, waits = recording_policy()
    with OpenAIServer(["never"], fail_first=[401]) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server, policy))
    assert err.value.retryable is False
    assert "rejected the API key" in str(err.value) and "fix: set OPENAI_API_KEY" in str(err.value)
    assert "\n" not in str(err.value)
    assert len(server.requests) == 1 and waits == []


@pytest.mark.parametrize("status, words", [(400, "rejected the request (400)"), (404, "404 for model")])
def test_other_client_errors_are_not_retried(status, words):
    policy, waits = recording_policy()
    with OpenAIServer(["never"], fail_first=[status]) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server, policy))
    assert not err.value.retryable
    assert words in str(err.value) and "scripted failure" in str(err.value)
    assert len(server.requests) == 1 and waits == []


def test_used_up_quota_is_not_retried():
    with OpenAIServer(["never"], fail_first=[(429, "insufficient_quota")]) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server))
    assert not err.value.retryable and "quota" in str(err.value)
    assert len(server.requests) == 1


def test_persistent_server_errors_give_up_after_max_attempts():
    policy, waits = recording_policy(max_attempts=3)
    with OpenAIServer(["never"], fail_first=[500, 502, 500, 500]) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server, policy))
    assert err.value.retryable
    assert "gave up after 3 attempts" in str(err.value) and "answered 500" in str(err.value)
    assert len(server.requests) == 3 and len(waits) == 2


def test_the_timeout_bounds_the_whole_call_not_each_try():
    policy, _ = recording_policy(max_attempts=5)
    started = time.monotonic()
    with OpenAIServer(["too late"], delay_s=30) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server, policy), timeout_s=0.3)
    assert time.monotonic() - started < 2  # not 5 tries of 0.3 s each, nor the server's 30 s
    assert err.value.retryable
    assert "gave up after 1 attempt" in str(err.value) and "0.3s model timeout" in str(err.value)
    assert len(server.requests) == 1


def test_retries_stop_when_the_timeout_is_spent():
    policy, waits = recording_policy(max_attempts=50, base_delay_s=0.05)
    policy = dataclasses.replace(policy, sleep=asyncio.sleep)  # real waits: they count against the timeout
    started = time.monotonic()
    with OpenAIServer(["never"], fail_first=[503] * 50) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server, policy), timeout_s=1.0)
    assert time.monotonic() - started < 2.5
    assert 2 <= len(server.requests) < 50 and "answered 503" in str(err.value)


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy, waits = recording_policy(max_attempts=2)
    provider = provider_from_spec("openai:m", base_url=f"http://127.0.0.1:{port}/v1", retry=policy, env={})
    with pytest.raises(ModelError) as err:
        complete(provider)
    assert err.value.retryable and "could not connect" in str(err.value)
    assert len(waits) == 1


def test_concurrent_calls_share_one_provider():
    with OpenAIServer(lambda body: body["messages"][-1]["content"].upper(), delay_s=0.05) as server:
        provider = openai_provider(server)

        async def many():
            return await asyncio.gather(
                *[provider.complete([Message("user", f"job {i}")], timeout_s=5) for i in range(8)]
            )

        replies = asyncio.run(many())
    assert [r.text for r in replies] == [f"JOB {i}" for i in range(8)]
    assert len(server.requests) == 8


class NotAnAPIServer(OpenAIServer):
    def reply_body(self, request, text, n):
        return text  # valid JSON, but a string where a completion object belongs


def test_a_server_that_does_not_speak_the_protocol_is_a_clear_error():
    with NotAnAPIServer(["<html>It works!</html>"]) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server))
    assert not err.value.retryable
    assert "not a chat completion" in str(err.value) and "fix:" in str(err.value)


@pytest.mark.parametrize("body", [b'{"id": "chatcmpl-1", "choices": [{"mess', b"\xff\xfe{\x00}", b"<html>busy</html>"],
                         ids=["truncated-json", "not-utf8", "html"])
def test_a_reply_that_cannot_be_read_is_a_model_error_and_is_retried(body):
    policy, waits = recording_policy()
    with OpenAIServer(["second try"], fail_first=[body]) as server:
        reply = complete(openai_provider(server, policy))
    assert reply.text == "second try" and len(server.requests) == 2 and len(waits) == 1
    with OpenAIServer(["never"], fail_first=[body] * 5) as server:
        with pytest.raises(ModelError) as err:
            complete(openai_provider(server, recording_policy(max_attempts=2)[0]))
    assert err.value.retryable and "could not be read" in str(err.value)


def test_a_lone_surrogate_in_a_reply_is_replaced_not_fatal():
    with OpenAIServer(["int f(void) { return 1; } /* \ud800 */"]) as server:
        reply = complete(openai_provider(server))
    assert "\ufffd" in reply.text and reply.text.encode("utf-8")  # storable and writable as UTF-8


@pytest.mark.parametrize("status", [401, 403])
def test_authentication_and_permission_errors_are_access_errors_not_retried(status):
    policy, waits = recording_policy()
    with OpenAIServer(["never"], fail_first=[status] * 3) as server:
        with pytest.raises(ModelAccessError) as err:
            complete(openai_provider(server, policy))
    assert len(server.requests) == 1 and waits == [] and "fix:" in str(err.value)


def test_each_retry_is_announced_with_the_time_left():
    from looplab.models.retry import retry_notes

    policy, _ = recording_policy()
    notes: list[str] = []

    async def call(provider):
        retry_notes.set(notes.append)
        return await provider.complete(MESSAGES, timeout_s=30)

    with OpenAIServer(["ok"], fail_first=[503, 503]) as server:
        assert asyncio.run(call(openai_provider(server, policy))).text == "ok"
    assert len(notes) == 2 and "retry 1 of 4" in notes[0] and "left of the 30s model timeout" in notes[0]
