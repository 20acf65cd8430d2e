"""Twilio: `X-Twilio-Signature: <base64>` HMAC-SHA1 with the auth token.

Form POSTs sign the full URL plus every parameter sorted by name (then value) as
`name + value`. JSON bodies carry `bodySHA256=<hex>` in the URL and only the URL is signed.
Twilio's own validator also accepts the URL with and without the default port.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from hookinspect.body import parse_form
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

NAME = "twilio"
HEADER = "X-Twilio-Signature"


USER_AGENT = "TwilioProxy/"


def detect(message: SignedMessage) -> Detection | None:
    fields = dict(parse_form(message.body)) if message.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded") else {}
    # Twilio's requests come from "TwilioProxy/1.1" even when the signature header is missing.
    if HEADER.lower() not in message.headers and "AccountSid" not in fields \
            and not (message.headers.get("user-agent") or "").startswith(USER_AGENT):
        return None
    if ("MessageSid" in fields or "SmsSid" in fields) and "Body" in fields:
        event: str | None = "message.incoming"
    elif "MessageStatus" in fields or "SmsStatus" in fields:
        event = f"message.{(fields.get('MessageStatus') or fields.get('SmsStatus') or '').lower()}"
    elif "CallStatus" in fields:
        event = f"call.{fields['CallStatus'].lower()}"
    else:
        event = None
    return Detection(NAME, event)


def _is_form(message: SignedMessage) -> bool:
    return (message.headers.get("content-type") or "").lower().startswith("application/x-www-form-urlencoded")


def signed_payload(message: SignedMessage, url: str) -> bytes:
    data = url
    if message.method.upper() == "POST" and _is_form(message):
        for name, value in sorted(parse_form(message.body)):
            data += name + value
    return data.encode("utf-8")


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    with_port = urlunsplit((parts.scheme, f"{host}:{parts.port or default}", parts.path, parts.query, ""))
    without = urlunsplit((parts.scheme, host, parts.path, parts.query, "")) if parts.port in (None, default) else url
    return list(dict.fromkeys([url, with_port, without]))


def verify(message: SignedMessage, secret: str, now: float, url: str | None = None) -> Verdict:
    signature = message.headers.get(HEADER)
    if signature is None:
        return Verdict(UNSIGNED, f"no {HEADER} header")
    url = url or message.url
    query = dict(parse_qsl(urlsplit(url).query))
    if "bodySHA256" in query and not matches_any(hashlib.sha256(message.body).hexdigest(), [query["bodySHA256"]]):
        return Verdict(INVALID, "body differs from the bodySHA256 in the URL")
    for candidate in _url_variants(url):
        if matches_any(b64(hmac_digest(secret.encode(), signed_payload(message, candidate), "sha1")), [signature.strip()]):
            return Verdict(VALID, f"signature matches for {candidate}")
    return Verdict(INVALID, f"no match for URL {url} (Twilio signs the exact public URL it called), "
                            "or the body or auth token differs")


def sign(message: SignedMessage, secret: str, now: float, url: str | None = None) -> dict[str, str]:
    return {HEADER: b64(hmac_digest(secret.encode(), signed_payload(message, url or message.url), "sha1"))}
