"""Shopify: `X-Shopify-Hmac-Sha256: <base64>` HMAC-SHA256 over the body with the app secret."""

from __future__ import annotations

from hookinspect.signing.base import (
    INVALID,
    UNSIGNED,
    VALID,
    Detection,
    SignedMessage,
    Verdict,
    b64,
    hmac_digest,
    matches_any,
)

NAME = "shopify"
HEADERS = ("X-Shopify-Hmac-Sha256", "shopify-hmac-sha256")


def detect(message: SignedMessage) -> Detection | None:
    topic = message.headers.get("x-shopify-topic") or message.headers.get("shopify-topic")
    if topic is None and not any(h.lower() in message.headers for h in HEADERS):
        return None
    return Detection(NAME, topic)


def verify(message: SignedMessage, secret: str, now: float) -> Verdict:
    for header in HEADERS:
        value = message.headers.get(header)
        if value is not None:
            if matches_any(b64(hmac_digest(secret.encode(), message.body)), [value.strip()]):
                return Verdict(VALID, f"{header} matches")
            return Verdict(INVALID, "body differs from what was signed, or the secret is wrong")
    return Verdict(UNSIGNED, "no X-Shopify-Hmac-Sha256 header")


def sign(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    name = next((h for h in HEADERS if h.lower() in message.headers), HEADERS[0])
    return {name: b64(hmac_digest(secret.encode(), message.body))}
