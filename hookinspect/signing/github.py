"""GitHub: `X-Hub-Signature-256: sha256=<hex>` (legacy `X-Hub-Signature: sha1=<hex>`) over the body."""

from __future__ import annotations

from hookinspect.signing.base import (
    INVALID,
    MALFORMED,
    UNSIGNED,
    VALID,
    Detection,
    SignedMessage,
    Verdict,
    hmac_digest,
    matches_any,
)

NAME = "github"


def detect(message: SignedMessage) -> Detection | None:
    event = message.headers.get("x-github-event")
    if event is None:
        return None
    action = message.json_field("action")
    return Detection(NAME, f"{event}.{action}" if isinstance(action, str) else event)


def verify(message: SignedMessage, secret: str, now: float) -> Verdict:
    for header, prefix, algorithm in (("X-Hub-Signature-256", "sha256=", "sha256"), ("X-Hub-Signature", "sha1=", "sha1")):
        value = message.headers.get(header)
        if value is None:
            continue
        if not value.startswith(prefix):
            return Verdict(MALFORMED, f"{header} must start with {prefix}")
        expected = hmac_digest(secret.encode(), message.body, algorithm).hex()
        if matches_any(expected, [value[len(prefix):].strip().lower()]):
            return Verdict(VALID, f"{header} matches")
        return Verdict(INVALID, "body differs from what was signed, or the secret is wrong")
    return Verdict(UNSIGNED, "no X-Hub-Signature-256 header (no secret configured on the GitHub webhook?)")


def sign(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    return {
        "X-Hub-Signature": "sha1=" + hmac_digest(secret.encode(), message.body, "sha1").hex(),
        "X-Hub-Signature-256": "sha256=" + hmac_digest(secret.encode(), message.body).hex(),
    }
