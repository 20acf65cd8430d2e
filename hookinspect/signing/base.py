"""What every provider module shares: the message to check, the verdict, HMAC helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from hookinspect.body import NOT_JSON, parse_json
from hookinspect.model import Headers
from hookinspect.values import parse_number

# Verdicts, a documented vocabulary (`ls --json`, `show --json`, the filter `verdict:`).
VALID = "valid"
INVALID = "invalid"
EXPIRED = "expired"
MALFORMED = "malformed"
UNSIGNED = "unsigned"
NO_SECRET = "no-secret"
VERDICTS = (VALID, INVALID, EXPIRED, MALFORMED, UNSIGNED, NO_SECRET)

# Stripe, Slack and Standard Webhooks reject signatures older than this by default.
DEFAULT_TOLERANCE = 300
# Unix seconds fit in 12 digits for thousands of years: a longer "timestamp" is not one (and
# Python refuses to read an integer of over 4,300 digits, which any sender may put in a header).
UNIX_SECONDS_DIGITS = 12


def unix_seconds(text: str | None) -> int | None:
    """A timestamp header's unix seconds (ASCII digits, spaces around allowed), or None."""
    number = parse_number((text or "").strip())
    return number if number is not None and number < 10**UNIX_SECONDS_DIGITS else None


@dataclass
class SignedMessage:
    """The parts of a request a signature covers: what arrived, or what is about to be sent."""

    method: str
    url: str  # full URL as the sender requested it (Twilio signs it)
    headers: Headers
    body: bytes

    def json(self) -> Any:
        # Parsed once: several providers' detect() may ask for it.
        if not hasattr(self, "_json"):
            self._json = parse_json(self.body)
        return self._json

    def json_field(self, *path: str) -> Any:
        doc = self.json()
        for step in path:  # keys, and list positions as digits ("events", "0", "action")
            if isinstance(doc, list) and step.isdigit() and int(step) < len(doc):
                doc = doc[int(step)]
            elif isinstance(doc, dict) and step in doc:
                doc = doc[step]
            else:
                return None
        return doc if doc is not NOT_JSON else None


@dataclass(frozen=True)
class Verdict:
    status: str  # one of VERDICTS
    reason: str
    age_seconds: float | None = None

    @property
    def is_valid(self) -> bool:
        return self.status == VALID


@dataclass(frozen=True)
class Detection:
    provider: str
    event_type: str | None


def hmac_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def matches_any(expected: bytes | str, candidates: list[str] | list[bytes]) -> bool:
    """Constant-time comparison against each candidate (several signatures: key rotation)."""
    found = False
    for candidate in candidates:
        a = expected.encode() if isinstance(expected, str) else expected
        b = candidate.encode() if isinstance(candidate, str) else candidate
        # no early exit: the time taken does not tell which candidate matched
        found |= hmac.compare_digest(a, b)
    return found


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def api_key_hint(secret: str) -> str | None:
    """A secret that is plainly an API key rather than a signing secret."""
    for prefix in ("sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_"):
        if secret.startswith(prefix):
            return "secret looks like an API key, not a signing secret"
    return None


def timestamp_verdict(ts: int, now: float, tolerance: int, future_too: bool) -> Verdict | None:
    """EXPIRED when `ts` is outside the window; None when it is within."""
    age = now - ts
    if age > tolerance:
        return Verdict(EXPIRED, f"timestamp {age:.0f} s old, tolerance {tolerance} s", age)
    if future_too and -age > tolerance:
        return Verdict(EXPIRED, f"timestamp {-age:.0f} s in the future, tolerance {tolerance} s", age)
    return None
