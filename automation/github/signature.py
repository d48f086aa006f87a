"""Webhook signature check: ``X-Hub-Signature-256`` against the raw request body.

GitHub signs every delivery with HMAC-SHA256 of the exact bytes it sends, keyed by the
webhook secret, and sends ``sha256=<hex digest>``; the receiver must compare in constant
time. See "Validating webhook deliveries":
https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
"""

from __future__ import annotations

import hashlib
import hmac
import re

HEADER = "X-Hub-Signature-256"

# GitHub sends the lowercase hex digest; anything else is not something GitHub produced.
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")


class BadSignature(Exception):
    """The delivery is not signed with our secret; ``reason`` says how it failed (never the expected value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: bytes, body: bytes) -> str:
    """The header value GitHub would send for ``body`` (used by tests and by replays of recorded deliveries)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> None:
    """Return if ``header`` is the signature of ``body`` under ``secret``, else raise BadSignature."""
    if not secret:
        # An empty key would make any sender able to sign: refuse rather than accept everything.
        raise BadSignature("no webhook secret is configured")
    if header is None or header == "":
        raise BadSignature(f"the {HEADER} header is missing")
    if not _SIGNATURE.fullmatch(header):
        raise BadSignature(f"the {HEADER} header is not of the form sha256=<64 lowercase hex digits>")
    if not hmac.compare_digest(sign(secret, body), header):
        raise BadSignature(f"the {HEADER} header does not match the body")
