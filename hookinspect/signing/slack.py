"""Slack: `X-Slack-Signature: v0=<hex>` over `v0:<X-Slack-Request-Timestamp>:` + body."""

from __future__ import annotations

from hookinspect.body import NOT_JSON, parse_form, parse_json
from hookinspect.signing.base import (
    DEFAULT_TOLERANCE,
    INVALID,
    MALFORMED,
    UNSIGNED,
    VALID,
    Detection,
    SignedMessage,
    Verdict,
    hmac_digest,
    matches_any,
    timestamp_verdict,
    unix_seconds,
)

NAME = "slack"


def detect(message: SignedMessage) -> Detection | None:
    user_agent = message.headers.get("user-agent") or ""
    if "x-slack-signature" not in message.headers and "Slackbot" not in user_agent \
            and not (message.json_field("api_app_id") and message.json_field("team_id")):
        return None
    doc = message.json()
    if isinstance(doc, dict):
        event = doc.get("event")
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            return Detection(NAME, event["type"])
        return Detection(NAME, doc.get("type") if isinstance(doc.get("type"), str) else None)
    fields = dict(parse_form(message.body))
    if "command" in fields:
        return Detection(NAME, f"command {fields['command']}")
    if "payload" in fields:
        payload = parse_json(fields["payload"].encode())
        if payload is not NOT_JSON and isinstance(payload, dict) and isinstance(payload.get("type"), str):
            return Detection(NAME, payload["type"])
    return Detection(NAME, None)


def verify(message: SignedMessage, secret: str, now: float, tolerance: int = DEFAULT_TOLERANCE) -> Verdict:
    signature = message.headers.get("x-slack-signature")
    timestamp = message.headers.get("x-slack-request-timestamp")
    if signature is None:
        return Verdict(UNSIGNED, "no X-Slack-Signature header")
    ts = unix_seconds(timestamp)
    if ts is None or not signature.startswith("v0="):
        return Verdict(MALFORMED, "needs X-Slack-Request-Timestamp and X-Slack-Signature: v0=<hex>")
    expected = "v0=" + hmac_digest(secret.encode(), f"v0:{ts}:".encode() + message.body).hex()
    if not matches_any(expected, [signature.strip()]):
        return Verdict(INVALID, "body differs from what was signed, or the secret is wrong")
    return timestamp_verdict(ts, now, tolerance, future_too=True) or \
        Verdict(VALID, f"v0 signature matches; signed {now - ts:.0f} s ago", now - ts)


def sign(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    ts = int(now)
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": "v0=" + hmac_digest(secret.encode(), f"v0:{ts}:".encode() + message.body).hex(),
    }
