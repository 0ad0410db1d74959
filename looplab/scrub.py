"""Redact what looks like a secret from text that may be stored or shown to the model."""

from __future__ import annotations

import os
import re

_SECRET_PATTERNS = [re.compile(p) for p in (
    r"sk-[A-Za-z0-9_\-]{16,}",  # OpenAI / Anthropic style
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API key
    r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"(?i)bearer\s+[A-Za-z0-9._\-]{16,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
)]
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH(?!OR)", re.IGNORECASE)


def scrub_secrets(text: str) -> str:
    """Redact what looks like a key or token, and the value of any env var named *KEY*/*TOKEN*/*SECRET*."""
    if not text:
        return text
    # Longest first so a value containing another value is redacted whole.
    values = sorted({v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8},
                    key=len, reverse=True)
    for v in values:
        text = text.replace(v, "[REDACTED]")
    for pat in _SECRET_PATTERNS:
        text = pat.sub("[REDACTED]", text)
    return text
