"""Model providers behind one Protocol, chosen by a spec string such as "openai:gpt-4o-mini".

Provider modules are imported on demand so a run that replays files never loads an SDK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from looplab.errors import UserError
from looplab.models.base import ModelError, ModelProvider, RepliesExhausted
from looplab.models.retry import RetryPolicy

__all__ = [
    "ModelError",
    "ModelProvider",
    "RepliesExhausted",
    "RetryPolicy",
    "default_model_spec",
    "provider_from_spec",
]

VALID_FORMS = "openai:MODEL, anthropic:MODEL, command:CMD, replay:FILE.jsonl, local or local:PATH"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5"


def provider_from_spec(
    spec: str,
    *,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    env: Mapping[str, str] | None = None,
) -> ModelProvider:
    """Build the provider a spec names. Bad specs and missing keys raise UserError.

    base_url (or OPENAI_BASE_URL / ANTHROPIC_BASE_URL) points openai:/anthropic: at another server;
    a local OpenAI-compatible server needs no key. retry: backoff policy for network providers.
    """
    env = os.environ if env is None else env
    kind, sep, rest = spec.strip().partition(":")
    rest = rest.strip()
    if kind == "local":
        _no_base_url(spec, base_url)
        from looplab.models.local import LocalProvider  # another module; heavy deps load only when asked

        return LocalProvider(rest or None)
    if kind not in ("openai", "anthropic", "command", "replay"):
        raise UserError(f"model spec {spec!r}: unknown provider {kind!r} (fix: use one of {VALID_FORMS})")
    if not rest:
        what = {"command": "command", "replay": "file"}.get(kind, "model name")
        raise UserError(f"model spec {spec!r}: the {what} after '{kind}:' is empty (fix: use one of {VALID_FORMS})")
    if kind == "command":
        _no_base_url(spec, base_url)
        from looplab.models.command import CommandProvider

        return CommandProvider(rest)
    if kind == "replay":
        _no_base_url(spec, base_url)
        from looplab.models.replay import ReplayProvider

        return ReplayProvider(rest)
    if kind == "openai":
        url = base_url or env.get("OPENAI_BASE_URL") or None
        key = _api_key(spec, env, "OPENAI_API_KEY", url)
        from looplab.models.openai_provider import OpenAIProvider

        return OpenAIProvider(rest, api_key=key, base_url=url, retry=retry)
    url = base_url or env.get("ANTHROPIC_BASE_URL") or None
    key = _api_key(spec, env, "ANTHROPIC_API_KEY", url)
    from looplab.models.anthropic_provider import AnthropicProvider

    return AnthropicProvider(rest, api_key=key, base_url=url, retry=retry)


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
