"""replay: provider and write_replies with real files."""

from __future__ import annotations

import asyncio
import json

import pytest

from looplab.errors import UserError
from looplab.models import RepliesExhausted, provider_from_spec
from looplab.models.replay import write_replies
from looplab.records import Message, Usage

ASK = [Message("user", "go")]


def ask(provider):
    return asyncio.run(provider.complete(ASK))


def write(path, *lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_replies_come_in_order_with_usage_then_run_out(tmp_path):
    f = write(
        tmp_path / "r.jsonl",
        json.dumps({"content": "first", "usage": {"prompt_tokens": 10, "completion_tokens": 4, "cached_tokens": 2}}),
        "",
        json.dumps({"content": "second"}),
    )
    provider = provider_from_spec(f"replay:{f}")
    one, two = ask(provider), ask(provider)
    assert (one.text, two.text) == ("first", "second")
    assert one.usage == Usage(10, 4, 2, 0.0)
    assert two.usage == Usage(0, 0, 0, 0.0)  # no usage: zeros, and a replay costs nothing
    assert one.model == f"replay:{f}"
    assert provider.received == [ASK, ASK]
    with pytest.raises(RepliesExhausted):
        ask(provider)


def test_each_reply_gets_its_own_usage_object(tmp_path):
    f = write(tmp_path / "r.jsonl", json.dumps({"content": "x", "usage": {"prompt_tokens": 1}}))
    reply = ask(provider_from_spec(f"replay:{f}"))
    reply.usage.prompt_tokens += 100
    assert ask(provider_from_spec(f"replay:{f}")).usage.prompt_tokens == 1


@pytest.mark.parametrize(
    "bad, words",
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "needs a string field 'content'"),
        ('{"content": 5}', "needs a string field 'content'"),
        ('{"content": "x", "usage": {"prompt_tokens": -1}}', "usage.prompt_tokens must be a whole number"),
        ('{"content": "x", "usage": {"prompt_tokens": 1.5}}', "usage.prompt_tokens must be a whole number"),
        ('{"content": "x", "usage": {"prompt_tokns": 1}}', "unknown usage field(s) ['prompt_tokns']"),
        ('{"content": "x", "usage": [1]}', "'usage' must be an object"),
    ],
)
def test_a_malformed_line_is_a_user_error_naming_file_and_line(tmp_path, bad, words):
    f = write(tmp_path / "r.jsonl", json.dumps({"content": "fine"}), bad)
    with pytest.raises(UserError) as err:
        provider_from_spec(f"replay:{f}")
    message = str(err.value)
    assert f"{f}: line 2" in message and words in message and "fix:" in message
    assert "\n" not in message


def test_a_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="replay file not found"):
        provider_from_spec(f"replay:{tmp_path / 'nope.jsonl'}")


def test_write_replies_round_trips_through_the_provider(tmp_path):
    tricky = "line one\nline two \u2028 still two \"quoted\" ünïcode\n```c\nint f(void);\n```"
    recorded = [(tricky, Usage(100, 20, 64, 0.0123)), ("second", Usage())]
    f = tmp_path / "out.jsonl"
    assert write_replies(f, recorded) == 2
    assert len(f.read_text(encoding="utf-8").split("\n")) == 3  # two lines and the final newline
    provider = provider_from_spec(f"replay:{f}")
    first, second = ask(provider), ask(provider)
    assert first.text == tricky and second.text == "second"
    assert first.usage == Usage(100, 20, 64, 0.0)  # tokens kept; replaying spends nothing
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left behind


def test_write_replies_accepts_a_generator_and_an_empty_stream(tmp_path):
    f = tmp_path / "empty.jsonl"
    assert write_replies(f, (r for r in [])) == 0
    assert f.read_text() == ""
    with pytest.raises(RepliesExhausted):
        ask(provider_from_spec(f"replay:{f}"))
