"""Model providers behind one Protocol, chosen by a spec string such as "openai:gpt-4o-mini".

Provider modules are imported on demand so a run that replays files never loads an SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from looplab.errors import UserError
from looplab.models.base import ModelError, ModelProvider, RepliesExhausted
from looplab.models.retry import RetryPolicy

__all__ = [
    "PROVIDERS",
    "ModelError",
    "ModelProvider",
    "RepliesExhausted",
    "RetryPolicy",
    "default_model_spec",
    "provider_from_spec",
]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5"


def provider_from_spec(
    spec: str,
    *,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    env: Mapping[str, str] | None = None,
) -> ModelProvider:
    """Build the provider a spec names (PROVIDERS). Bad specs and missing keys raise UserError.

    base_url (or OPENAI_BASE_URL / ANTHROPIC_BASE_URL) points openai:/anthropic: at another server;
    a local OpenAI-compatible server needs no key. retry: backoff policy for network providers.
    """
    env = os.environ if env is None else env
    kind, _, rest = spec.strip().partition(":")
    rest = rest.strip()
    scheme = PROVIDERS.get(kind)
    if scheme is None:
        raise UserError(f"model spec {spec!r}: unknown provider {kind!r} (fix: use one of {VALID_FORMS})")
    if scheme.needs and not rest:
        raise UserError(f"model spec {spec!r}: the {scheme.needs} after '{kind}:' is empty "
                        f"(fix: use one of {VALID_FORMS})")
    if not scheme.network:
        _no_base_url(spec, base_url)
    return scheme.build(spec, rest, base_url, retry, env)


# --- the providers: each module is imported only when its spec is used, so no SDK loads before it is needed ---

Build = Callable[[str, str, str | None, RetryPolicy | None, Mapping[str, str]], ModelProvider]


@dataclass(frozen=True)
class Scheme:
    form: str  # how a spec is written, for messages
    needs: str  # what must follow "scheme:" ("": nothing)
    network: bool  # takes a base URL and a retry policy
    build: Build  # (spec, what follows the colon, base_url, retry, env) -> the provider


def _openai(spec: str, model: str, base_url: str | None, retry: RetryPolicy | None,
            env: Mapping[str, str]) -> ModelProvider:
    url = base_url or env.get("OPENAI_BASE_URL") or None
    key = _api_key(spec, env, "OPENAI_API_KEY", url)
    from looplab.models.openai_provider import OpenAIProvider

    return OpenAIProvider(model, api_key=key, base_url=url, retry=retry)


def _anthropic(spec: str, model: str, base_url: str | None, retry: RetryPolicy | None,
               env: Mapping[str, str]) -> ModelProvider:
    url = base_url or env.get("ANTHROPIC_BASE_URL") or None
    key = _api_key(spec, env, "ANTHROPIC_API_KEY", url)
    from looplab.models.anthropic_provider import AnthropicProvider

    return AnthropicProvider(model, api_key=key, base_url=url, retry=retry)


def _command(spec: str, command: str, *_: object) -> ModelProvider:
    from looplab.models.command import CommandProvider

    return CommandProvider(command)


def _replay(spec: str, path: str, *_: object) -> ModelProvider:
    from looplab.models.replay import ReplayProvider

    return ReplayProvider(path)


def _local(spec: str, path: str, *_: object) -> ModelProvider:
    from looplab.models.local import LocalProvider  # llama-cpp-python loads only in its worker process

    return LocalProvider(path or None)


PROVIDERS: dict[str, Scheme] = {
    "openai": Scheme("openai:MODEL", "model name", True, _openai),
    "anthropic": Scheme("anthropic:MODEL", "model name", True, _anthropic),
    "command": Scheme("command:CMD", "command", False, _command),
    "replay": Scheme("replay:FILE.jsonl", "file", False, _replay),
    "local": Scheme("local or local:PATH", "", False, _local),
}
VALID_FORMS = ", ".join(s.form for s in PROVIDERS.values())


def default_model_spec(env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(spec, why) when the user named no model: LOOPLAB_MODEL › an OpenAI key › an Anthropic key › local."""
    if env.get("LOOPLAB_MODEL", "").strip():
        return env["LOOPLAB_MODEL"].strip(), "LOOPLAB_MODEL is set"
    if env.get("OPENAI_API_KEY"):
        return f"openai:{DEFAULT_OPENAI_MODEL}", "OPENAI_API_KEY is set"
    if env.get("ANTHROPIC_API_KEY"):
        return f"anthropic:{DEFAULT_ANTHROPIC_MODEL}", "ANTHROPIC_API_KEY is set"
    return "local", "no LOOPLAB_MODEL, OPENAI_API_KEY or ANTHROPIC_API_KEY is set"


def _api_key(spec: str, env: Mapping[str, str], key_env: str, base_url: str | None) -> str:
    key = env.get(key_env)
    if key:
        return key
    if base_url:
        return "not-needed"  # local servers ignore the key, but the SDKs insist on one
    raise UserError(
        f"model spec {spec!r}: {key_env} is not set (fix: export {key_env}=..., or pass a base URL "
        "of a compatible server)"
    )


def _no_base_url(spec: str, base_url: str | None) -> None:
    if base_url:
        raise UserError(
            f"model spec {spec!r}: a base URL applies only to openai: and anthropic: specs (fix: drop it)"
        )
