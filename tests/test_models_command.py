"""command: provider with real `sh -c` commands."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from looplab.models import ModelError, provider_from_spec
from looplab.models.command import render_plain, simple_argv
from looplab.records import Message

PROMPT = [Message("system", "You write C."), Message("user", "Make it fast.")]


def complete(spec, messages=PROMPT, timeout_s=10.0):
    return asyncio.run(provider_from_spec(spec).complete(messages, timeout_s=timeout_s))


def is_gone(pid: int) -> bool:
    """Dead or a zombie waiting for a reaper (some containers' PID 1 reaps late)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, limit_s: float = 5.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        time.sleep(0.02)
    return False


def test_stdout_is_the_reply_and_usage_is_estimated_without_a_price():
    reply = complete("command:echo hello world")
    assert reply.text == "hello world\n"
    assert reply.model == "command:echo hello world"
    assert reply.usage.prompt_tokens == len("You write C.\n\nMake it fast.") // 4
    assert reply.usage.completion_tokens == len("hello world\n") // 4
    assert reply.usage.cost_usd is None  # an unknown CLI's cost is unknown, not free


def test_the_prompt_arrives_on_stdin_as_plain_text():
    reply = complete("command:cat")
    assert reply.text == "You write C.\n\nMake it fast."


def test_a_conversation_keeps_its_roles():
    talk = [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    assert render_plain(talk) == "## user\n\na\n\n## assistant\n\nb\n\n## user\n\nc"
    assert complete("command:cat", talk).text == render_plain(talk)


def test_non_zero_exit_is_an_error_with_the_stderr_tail():
    with pytest.raises(ModelError) as err:
        complete("command:echo partial; echo 'quota exceeded' >&2; exit 3")
    assert "exited with 3" in str(err.value) and "quota exceeded" in str(err.value)
    assert err.value.retryable  # the CLI may wrap a flaky network call


def test_a_missing_command_is_not_worth_retrying():
    with pytest.raises(ModelError) as err:
        complete("command:no-such-model-cli-xyz --fast")
    assert not err.value.retryable
    assert "cannot run no-such-model-cli-xyz: No such file or directory" in str(err.value), err.value
    assert "fix:" in str(err.value)
    with pytest.raises(ModelError) as err:  # through the shell: its exit status 127 says the same
        complete("command:no-such-model-cli-xyz --fast 2>&1")
    assert not err.value.retryable and "exited with 127" in str(err.value) and "fix:" in str(err.value)


def test_timeout_kills_the_command_and_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    # The watched child outlives the foreground sleep and holds no pipe, so a leak cannot hide behind a stall.
    provider = provider_from_spec(f"command:sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}; sleep 60")

    async def time_out_then_look():
        with pytest.raises(ModelError) as err:
            await provider.complete(PROMPT, timeout_s=0.5)
        # Look inside the loop: asyncio.run's exit would otherwise wait for orphans holding the pipes.
        return err.value, wait_gone(int(pidfile.read_text()))

    error, child_gone = asyncio.run(time_out_then_look())
    assert error.retryable and "no reply within 0.5s" in str(error)
    assert child_gone, "a child of the timed-out command is still running"


def test_background_children_left_by_a_finished_command_are_killed():
    reply = complete("command:sleep 60 >/dev/null 2>&1 & echo $!")
    child = int(reply.text)
    assert child != os.getpid()
    assert wait_gone(child), f"background child {child} survived the call"


@pytest.mark.parametrize("command, argv", [
    ("llm -m gpt-4o-mini", ["llm", "-m", "gpt-4o-mini"]),
    ("ollama run 'qwen2.5-coder:7b'", ["ollama", "run", "qwen2.5-coder:7b"]),
    ("cat prompt | llm", None), ("llm > out.txt", None), ("A=1 llm", None), ("llm $MODEL", None),
    ("llm; rm -rf x", None), ("llm 'unclosed", None), ("", None),
])
def test_only_a_plain_program_call_runs_without_a_shell(command: str, argv: list[str] | None) -> None:
    assert simple_argv(command) == argv
