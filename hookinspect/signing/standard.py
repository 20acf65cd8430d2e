"""Standard Webhooks and Svix: `webhook-id/-timestamp/-signature` (or `svix-*`), `v1,<base64>`.

The key is the base64-decoded part of the secret after `whsec_`; the signed bytes are
`<id>.<timestamp>.` + body. Several space-separated signatures verify if any matches.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from hookinspect.signing.base import (
    DEFAULT_TOLERANCE,
    INVALID,
    MALFORMED,
    UNSIGNED,
    VALID,
    Detection,
    SignedMessage,
    Verdict,
    b64,
    hmac_digest,
    matches_any,
    timestamp_verdict,
    unix_seconds,
)

STANDARD = "standard"
SVIX = "svix"


def _prefix(provider: str) -> str:
    return "svix-" if provider == SVIX else "webhook-"


def decode_secret(secret: str) -> bytes:
    """The HMAC key: base64 after an optional `whsec_` prefix; ValueError when it is not base64."""
    raw = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret is not base64 after whsec_ (Standard Webhooks secrets are)") from None


def _detect(message: SignedMessage, provider: str) -> Detection | None:
    prefix = _prefix(provider)
    if f"{prefix}signature" not in message.headers and f"{prefix}id" not in message.headers:
        return None
    event = message.json_field("type")
    return Detection(provider, event if isinstance(event, str) else None)


def detect_standard(message: SignedMessage) -> Detection | None:
    return _detect(message, STANDARD)


def detect_svix(message: SignedMessage) -> Detection | None:
    return _detect(message, SVIX)


def _verify(message: SignedMessage, secret: str, now: float, provider: str, tolerance: int) -> Verdict:
    prefix = _prefix(provider)
    msg_id = message.headers.get(f"{prefix}id")
    timestamp = message.headers.get(f"{prefix}timestamp")
    signature = message.headers.get(f"{prefix}signature")
    if signature is None:
        return Verdict(UNSIGNED, f"no {prefix}signature header")
    ts = unix_seconds(timestamp)
    if not msg_id or ts is None:
        return Verdict(MALFORMED, f"needs {prefix}id, {prefix}timestamp (unix seconds) and {prefix}signature")
    try:
        key = decode_secret(secret)
    except ValueError as exc:
        return Verdict(INVALID, str(exc))
    candidates = [part.split(",", 1)[1] for part in signature.split() if part.startswith("v1,")]
    if not candidates:
        return Verdict(MALFORMED, f"{prefix}signature has no v1,<base64> entry")
    expected = b64(hmac_digest(key, f"{msg_id}.{ts}.".encode() + message.body))
    if not matches_any(expected, candidates):
        return Verdict(INVALID, "body differs from what was signed, or the secret is wrong")
    return timestamp_verdict(ts, now, tolerance, future_too=True) or \
        Verdict(VALID, f"v1 signature matches; signed {now - ts:.0f} s ago", now - ts)


def verify_standard(message: SignedMessage, secret: str, now: float, tolerance: int = DEFAULT_TOLERANCE) -> Verdict:
    return _verify(message, secret, now, STANDARD, tolerance)


def verify_svix(message: SignedMessage, secret: str, now: float, tolerance: int = DEFAULT_TOLERANCE) -> Verdict:
    return _verify(message, secret, now, SVIX, tolerance)


def _sign(message: SignedMessage, secret: str, now: float, provider: str) -> dict[str, str]:
    prefix = _prefix(provider)
    # The id is the receiver's idempotency key: a re-signed replay keeps the original one.
    msg_id = message.headers.get(f"{prefix}id") or f"msg_{secrets.token_hex(12)}"
    ts = int(now)
    signature = b64(hmac_digest(decode_secret(secret), f"{msg_id}.{ts}.".encode() + message.body))
    return {f"{prefix}id": msg_id, f"{prefix}timestamp": str(ts), f"{prefix}signature": f"v1,{signature}"}


def sign_standard(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    return _sign(message, secret, now, STANDARD)


def sign_svix(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    return _sign(message, secret, now, SVIX)
