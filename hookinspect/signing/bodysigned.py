"""Providers whose signature travels inside the body: Adyen (a signature per notification item)
and Mailgun (a signature object beside the event). Re-signing rewrites only the bytes of those
signature fields; the rest of the body stays as it was captured.

Sources: Adyen, "Verify HMAC signatures" (docs.adyen.com/development-resources/webhooks/verify-hmac-signatures)
and the Adyen Python library's `Adyen.util`; Mailgun, "Securing webhooks"
(documentation.mailgun.com, webhooks/securing-webhooks).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets as random
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from hookinspect.signing.base import (
    INVALID,
    MALFORMED,
    UNSIGNED,
    VALID,
    Detection,
    SignedMessage,
    Verdict,
    matches_any,
)

ADYEN = "adyen"
MAILGUN = "mailgun"

# -- Adyen -------------------------------------------------------------------------------------

# The fields an Adyen notification item's HMAC covers, in this order, joined by ":".
ADYEN_FIELDS = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference", "value", "currency",
                "eventCode", "success")


def _adyen_items(message: SignedMessage) -> list[dict[str, Any]] | None:
    doc = message.json()
    items = doc.get("notificationItems") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        return None
    found = [item.get("NotificationRequestItem") for item in items if isinstance(item, dict)]
    return [item for item in found if isinstance(item, dict)] or None


def adyen_signing_string(item: dict[str, Any]) -> str:
    amount = item.get("amount") if isinstance(item.get("amount"), dict) else {}
    values = {**item, "value": amount.get("value", ""), "currency": amount.get("currency", "")}
    return ":".join(_adyen_text(values.get(name, "")) for name in ADYEN_FIELDS)


def _adyen_text(value: Any) -> str:
    # As Adyen's own libraries write each value: Python's str() of what the JSON held.
    return str(value)


def _adyen_signature(item: dict[str, Any], key: bytes) -> str:
    return base64.b64encode(hmac.new(key, adyen_signing_string(item).encode(), hashlib.sha256).digest()).decode()


def _adyen_key(secret: str) -> bytes:
    return binascii.a2b_hex(secret.strip())


def detect_adyen(message: SignedMessage) -> Detection | None:
    items = _adyen_items(message)
    if items is None:
        return None
    event = items[0].get("eventCode")
    return Detection(ADYEN, str(event) if isinstance(event, str) else None)


def verify_adyen(message: SignedMessage, secret: str, now: float) -> Verdict:
    items = _adyen_items(message) or []
    signatures = [(item.get("additionalData") or {}).get("hmacSignature") if isinstance(item.get("additionalData"), dict)
                  else None for item in items]
    if not any(signatures):
        return Verdict(UNSIGNED, "no additionalData.hmacSignature in the notification items")
    try:
        key = _adyen_key(secret)
    except (binascii.Error, ValueError):
        return Verdict(MALFORMED, "the HMAC key is not hex")
    for number, (item, signature) in enumerate(zip(items, signatures, strict=True), 1):
        if not isinstance(signature, str) or not signature:
            return Verdict(MALFORMED, f"notification item {number} has no hmacSignature")
        if not matches_any(_adyen_signature(item, key), [signature]):
            return Verdict(INVALID, f"item {number}: its signed fields ({', '.join(ADYEN_FIELDS)}) differ from what was "
                                    "signed, or the key is wrong")
    return Verdict(VALID, f"hmacSignature matches in {len(items)} item(s); it covers {len(ADYEN_FIELDS)} fields, "
                          "not the whole body")


def sign_adyen_body(message: SignedMessage, secret: str, now: float) -> bytes:
    items = _adyen_items(message)
    if items is None:
        return message.body
    fresh = iter([_adyen_signature(item, _adyen_key(secret)) for item in items])
    pattern = re.compile(rb'("hmacSignature"\s*:\s*)"[^"\\]*"')
    if len(pattern.findall(message.body)) == len(items):  # in place: the rest of the body keeps its bytes
        return pattern.sub(lambda m: m.group(1) + json.dumps(next(fresh)).encode(), message.body)
    doc = json.loads(message.body)
    for wrapper in doc["notificationItems"]:
        item = wrapper["NotificationRequestItem"]
        item.setdefault("additionalData", {})["hmacSignature"] = next(fresh)
    return json.dumps(doc).encode()


def sign_adyen(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    return {}  # all of it is in the body


# -- Mailgun -----------------------------------------------------------------------------------

_MAILGUN_KEYS = ("timestamp", "token", "signature")


def _mailgun_parts(message: SignedMessage) -> dict[str, str] | None:
    """timestamp, token and signature: a JSON `signature` object, or form fields (legacy webhooks)."""
    doc = message.json()
    if isinstance(doc, dict):
        parts = doc.get("signature")
        if isinstance(parts, dict) and "event-data" in doc:
            return {k: str(parts.get(k, "")) for k in _MAILGUN_KEYS}
        return None
    if "x-www-form-urlencoded" not in (message.headers.get("content-type") or ""):
        return None
    try:
        fields = dict(parse_qsl(message.body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None
    if all(k in fields for k in _MAILGUN_KEYS):
        return {k: fields[k] for k in _MAILGUN_KEYS}
    return None


def _mailgun_signature(secret: str, timestamp: str, token: str) -> str:
    return hmac.new(secret.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def detect_mailgun(message: SignedMessage) -> Detection | None:
    if _mailgun_parts(message) is None:
        return None
    doc = message.json()
    event = doc.get("event-data", {}).get("event") if isinstance(doc, dict) and isinstance(doc.get("event-data"), dict) \
        else None
    if event is None and not isinstance(doc, dict):
        event = dict(parse_qsl(message.body.decode("utf-8", "replace"))).get("event")
    return Detection(MAILGUN, event if isinstance(event, str) else None)


def verify_mailgun(message: SignedMessage, secret: str, now: float) -> Verdict:
    parts = _mailgun_parts(message)
    if parts is None or not parts["signature"]:
        return Verdict(UNSIGNED, "no signature object (timestamp, token, signature)")
    if not parts["timestamp"] or not parts["token"]:
        return Verdict(MALFORMED, "the signature object lacks its timestamp or token")
    if not matches_any(_mailgun_signature(secret, parts["timestamp"], parts["token"]), [parts["signature"]]):
        return Verdict(INVALID, "signature differs from HMAC(timestamp + token), or the signing key is wrong")
    # Mailgun's signature covers its timestamp and token, not the event: say so.
    return Verdict(VALID, "signature matches; it covers the timestamp and token, not the event data")


def sign_mailgun_body(message: SignedMessage, secret: str, now: float) -> bytes:
    if _mailgun_parts(message) is None:
        return message.body
    fresh = {"timestamp": str(int(now)), "token": random.token_hex(25)}
    fresh["signature"] = _mailgun_signature(secret, fresh["timestamp"], fresh["token"])
    if isinstance(message.json(), dict):
        obj = re.compile(rb'("signature"\s*:\s*)\{[^{}]*\}')
        return obj.sub(lambda m: m.group(1) + json.dumps(fresh).encode(), message.body, count=1)
    body = message.body
    for key, value in fresh.items():
        body = re.sub(rb"(^|&)" + key.encode() + rb"=[^&]*", lambda m, v=value, k=key: m.group(1) + k.encode() + b"="
                      + quote_plus(v).encode(), body, count=1)
    return body


def sign_mailgun(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    return {}  # all of it is in the body
