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


# Signs of GitHub besides X-GitHub-Event, which a proxy or a hand-made replay may have dropped.
CUES = ("x-github-delivery", "x-github-hook-id", "x-hub-signature-256", "x-hub-signature")


def detect(message: SignedMessage) -> Detection | None:
    event = message.headers.get("x-github-event")
    if event is None:
        user_agent = message.headers.get("user-agent") or ""
        if not user_agent.startswith("GitHub-Hookshot/") and not any(name in message.headers for name in CUES):
            return None
        return Detection(NAME, None)  # GitHub, but the event type is only in that header
    action = message.json_field("action")
    return Detection(NAME, f"{event}.{action}" if isinstance(action, str) else event)


def verify(message: SignedMessage, secret: str, now: float) -> Verdict:
    value = message.headers.get("X-Hub-Signature-256")
    if value is None:
        # GitHub's libraries check only the SHA-256 header: a delivery with the legacy SHA-1 one
        # alone fails there, so it is not "valid" here either; the reason says what SHA-1 showed.
        legacy = message.headers.get("X-Hub-Signature")
        if legacy is not None and legacy.startswith("sha1="):
            expected = hmac_digest(secret.encode(), message.body, "sha1").hex()
            sha1 = "matches" if matches_any(expected, [legacy[5:].strip().lower()]) else "does not match"
            return Verdict(UNSIGNED, f"only the legacy X-Hub-Signature (SHA-1, which {sha1}); GitHub's libraries "
                                     "check X-Hub-Signature-256")
        return Verdict(UNSIGNED, "no X-Hub-Signature-256 header (no secret configured on the GitHub webhook?)")
    if not value.startswith("sha256="):
        return Verdict(MALFORMED, "X-Hub-Signature-256 must start with sha256=")
    expected = hmac_digest(secret.encode(), message.body, "sha256").hex()
    if matches_any(expected, [value[len("sha256="):].strip().lower()]):
        return Verdict(VALID, "X-Hub-Signature-256 matches")
    return Verdict(INVALID, "body differs from what was signed, or the secret is wrong")


def sign(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    return {
        "X-Hub-Signature": "sha1=" + hmac_digest(secret.encode(), message.body, "sha1").hex(),
        "X-Hub-Signature-256": "sha256=" + hmac_digest(secret.encode(), message.body).hex(),
    }
