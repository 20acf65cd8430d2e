"""Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 over `<t>.` + body."""

from __future__ import annotations

from hookinspect.signing.base import (
    DEFAULT_TOLERANCE,
    INVALID,
    MALFORMED,
    UNSIGNED,
    VALID,
    Detection,
    SignedMessage,
    Verdict,
    api_key_hint,
    hmac_digest,
    matches_any,
    timestamp_verdict,
    unix_seconds,
)

NAME = "stripe"
HEADER = "Stripe-Signature"


def detect(message: SignedMessage) -> Detection | None:
    user_agent = message.headers.get("user-agent") or ""
    if HEADER.lower() not in message.headers and not user_agent.startswith("Stripe/") and not _is_stripe_event(message):
        return None
    event = message.json_field("type")
    return Detection(NAME, event if isinstance(event, str) else None)


def _is_stripe_event(message: SignedMessage) -> bool:
    """A Stripe event by its payload alone: `{"id": "evt_…", "object": "event", …}`."""
    event_id = message.json_field("id")
    return message.json_field("object") == "event" and isinstance(event_id, str) and event_id.startswith("evt_")


def _parse(value: str) -> tuple[int | None, list[str]]:
    timestamp = None
    signatures = []
    for part in value.split(","):
        key, eq, val = part.strip().partition("=")
        if not eq:
            continue
        if key == "t" and unix_seconds(val) is not None:
            timestamp = unix_seconds(val)
        elif key == "v1":
            signatures.append(val)
    return timestamp, signatures


def expected_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac_digest(secret.encode(), f"{timestamp}.".encode() + body).hex()


def verify(message: SignedMessage, secret: str, now: float, tolerance: int = DEFAULT_TOLERANCE) -> Verdict:
    value = message.headers.get(HEADER)
    if value is None:
        return Verdict(UNSIGNED, f"no {HEADER} header")
    timestamp, signatures = _parse(value)
    if timestamp is None or not signatures:
        return Verdict(MALFORMED, f"{HEADER} needs t=<unix time> and at least one v1=<hex>")
    if not matches_any(expected_signature(secret, timestamp, message.body), signatures):
        return Verdict(INVALID, api_key_hint(secret) or "body differs from what was signed, or the secret is wrong")
    # Stripe rejects only signatures that are too old, never ones from the future.
    return timestamp_verdict(timestamp, now, tolerance, future_too=False) or \
        Verdict(VALID, f"v1 signature matches; signed {now - timestamp:.0f} s ago", now - timestamp)


def sign(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    timestamp = int(now)
    return {HEADER: f"t={timestamp},v1={expected_signature(secret, timestamp, message.body)}"}
