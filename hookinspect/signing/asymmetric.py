"""Signatures that are not HMAC: Discord's Ed25519 and SendGrid's ECDSA (P-256, SHA-256).

The provider holds the private key; a receiver checks with the public key it was given. So
the "secret" here is a key:
- to check real traffic, the public key the provider shows (Discord: 64 hex characters;
  SendGrid: the base64 key of the Event Webhook settings);
- to sign (replays, `send`, testing your own verification), a private key of a test pair:
  `seed:<64 hex>` for Discord, `pem:<path to a PEM file>` for SendGrid. Its public half is
  derived to check.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from hookinspect.signing.base import (
    INVALID,
    MALFORMED,
    UNSIGNED,
    VALID,
    Detection,
    SignedMessage,
    Verdict,
    unix_seconds,
)

DISCORD = "discord"
DISCORD_SIGNATURE = "X-Signature-Ed25519"
DISCORD_TIMESTAMP = "X-Signature-Timestamp"
SENDGRID = "sendgrid"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
# Neither documents a time window, and neither's own library checks one: a signature of any age
# is valid, as it is for them; the verdict says how old it is.


class KeyError_(ValueError):
    """The key given is not a key of the right kind."""


def signed_parts(message: SignedMessage, signature_header: str, timestamp_header: str) -> tuple[str, str] | Verdict:
    """The signature and the numeric timestamp a delivery carries, or the verdict saying what is missing."""
    signature, timestamp = message.headers.get(signature_header), message.headers.get(timestamp_header)
    if signature is None:
        return Verdict(UNSIGNED, f"no {signature_header} header")
    if unix_seconds(timestamp) is None:
        return Verdict(MALFORMED, f"no numeric {timestamp_header}")
    return signature, timestamp


# -- Discord -----------------------------------------------------------------------------------

def _discord_keys(secret: str) -> tuple[ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey | None]:
    try:
        if secret.startswith("seed:"):
            private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret[5:]))
            return private.public_key(), private
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(secret)), None
    except ValueError as exc:
        raise KeyError_(f"not an Ed25519 key: {exc}") from None


def detect_discord(message: SignedMessage) -> Detection | None:
    if DISCORD_SIGNATURE.lower() not in message.headers:
        return None
    kind = message.json_field("type")
    return Detection(DISCORD, f"interaction.{kind}" if isinstance(kind, int) else None)


def verify_discord(message: SignedMessage, secret: str, now: float) -> Verdict:
    parts = signed_parts(message, DISCORD_SIGNATURE, DISCORD_TIMESTAMP)
    if isinstance(parts, Verdict):
        return parts
    signature, timestamp = parts
    try:
        public, _ = _discord_keys(secret)
        public.verify(bytes.fromhex(signature), timestamp.encode() + message.body)
    except KeyError_ as exc:
        return Verdict(MALFORMED, f"the key given for discord is {exc}")
    except ValueError:
        return Verdict(MALFORMED, f"{DISCORD_SIGNATURE} is not hex")
    except InvalidSignature:
        return Verdict(INVALID, "body differs from what was signed, or the public key is not the application's")
    return _valid_at(DISCORD_SIGNATURE, timestamp, now)


def sign_discord(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    _, private = _discord_keys(secret)
    if private is None:
        return {}  # a public key checks, it cannot sign: the delivery goes out as recorded
    timestamp = str(int(now))
    return {DISCORD_SIGNATURE: private.sign(timestamp.encode() + message.body).hex(), DISCORD_TIMESTAMP: timestamp}


# -- SendGrid ------------------------------------------------------------------------------------

def _sendgrid_keys(secret: str) -> tuple[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey | None]:
    try:
        if secret.startswith("pem:"):
            private = serialization.load_pem_private_key(Path(secret[4:]).read_bytes(), password=None)
            if not isinstance(private, ec.EllipticCurvePrivateKey):
                raise KeyError_("the PEM file holds no EC private key")
            return private.public_key(), private
        public = serialization.load_der_public_key(base64.b64decode(secret))
    except (ValueError, binascii.Error, OSError) as exc:
        raise KeyError_(f"not an EC key: {exc}") from None
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise KeyError_("not an EC public key")
    return public, None


def detect_sendgrid(message: SignedMessage) -> Detection | None:
    if SENDGRID_SIGNATURE.lower() not in message.headers:
        return None
    events = message.json()
    first = events[0] if isinstance(events, list) and events and isinstance(events[0], dict) else {}
    return Detection(SENDGRID, first.get("event") if isinstance(first.get("event"), str) else None)


def verify_sendgrid(message: SignedMessage, secret: str, now: float) -> Verdict:
    parts = signed_parts(message, SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP)
    if isinstance(parts, Verdict):
        return parts
    signature, timestamp = parts
    try:
        public, _ = _sendgrid_keys(secret)
        public.verify(base64.b64decode(signature), timestamp.encode() + message.body, ec.ECDSA(hashes.SHA256()))
    except KeyError_ as exc:
        return Verdict(MALFORMED, f"the key given for sendgrid is {exc}")
    except ValueError:  # binascii.Error, and the ValueError of a signature with non-ASCII in it
        return Verdict(MALFORMED, f"{SENDGRID_SIGNATURE} is not base64")
    except InvalidSignature:
        return Verdict(INVALID, "body differs from what was signed, or the public key is not the account's")
    return _valid_at(SENDGRID_SIGNATURE, timestamp, now)


def _valid_at(header: str, timestamp: str, now: float) -> Verdict:
    age = now - int(timestamp)
    when = f"{age:.0f} s ago" if age >= 0 else f"{-age:.0f} s in the future"
    return Verdict(VALID, f"{header} matches (signed {when}; the sender defines no time window)", age)


def sign_sendgrid(message: SignedMessage, secret: str, now: float) -> dict[str, str]:
    _, private = _sendgrid_keys(secret)
    if private is None:
        return {}
    timestamp = str(int(now))
    signature = private.sign(timestamp.encode() + message.body, ec.ECDSA(hashes.SHA256()))
    return {SENDGRID_SIGNATURE: base64.b64encode(signature).decode(), SENDGRID_TIMESTAMP: timestamp}
