"""A declarative signature scheme: the common shape of webhook signatures, as data.

HMAC (SHA-1/256/512) over a template of the body, a timestamp, an id, the method and the URL;
hex or base64; in a header with a prefix (`sha256=`) or in a list (`t=…,v1=…`); a tolerance
for the timestamp; several signatures (key rotation); secrets in text, hex or base64. Or a
shared token compared as it is (GitLab, Telegram). Each built-in provider is one of these
(signing/providers.py), and users define their own in hookinspect.toml:

    [providers.acme]
    detect = { header = "X-Acme-Signature" }
    header = "X-Acme-Signature"
    algorithm = "hmac-sha256"
    encoding = "hex"
    prefix = "sha256="
    signed = "{body}"
    event = "$.type"
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hookinspect.errors import UsageError, did_you_mean
from hookinspect.signing.base import (
    DEFAULT_TOLERANCE,
    EXPIRED,
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
)

ALGORITHMS = {"hmac-sha1": "sha1", "hmac-sha256": "sha256", "hmac-sha512": "sha512", "token": None}
ENCODINGS = ("hex", "base64")
SECRET_ENCODINGS = ("text", "hex", "base64")
TIMESTAMP_FORMATS = ("unix", "unix-ms", "rfc3339")
ANY_FUTURE = 2**62  # a future_tolerance for senders whose own library accepts any future timestamp
PLACEHOLDERS = ("body", "timestamp", "id", "method", "url")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Detect:
    """How a delivery is recognised: any one of these that is given must hold."""

    header: str | None = None  # present; "Name: glob" also tests its value
    user_agent: str | None = None  # a glob
    path: str | None = None  # a glob
    json: str | None = None  # "$.object" present, or "$.object=whatsapp_business_account" (globs: "$.type=email.*|domain.*")

    def cues(self) -> set[str]:
        return {self.header.split(":")[0].strip().lower()} if self.header else set()

    def matches(self, message: SignedMessage) -> bool:
        if self.header is not None:
            name, colon, glob = self.header.partition(":")
            value = message.headers.get(name.strip())
            if value is None or (colon and not fnmatch.fnmatchcase(value, glob.strip())):
                return False
        if self.user_agent is not None and not fnmatch.fnmatchcase(message.headers.get("user-agent") or "", self.user_agent):
            return False
        if self.path is not None:
            path = "/" + message.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
            if not fnmatch.fnmatchcase(path, self.path):
                return False
        if self.json is not None:
            where, eq, wanted = self.json.partition("=")
            value = json_at(message, where)
            if value is None or (eq and not any(fnmatch.fnmatchcase(str(value), alt) for alt in wanted.split("|"))):
                return False
        return any(x is not None for x in (self.header, self.user_agent, self.path, self.json))


def json_at(message: SignedMessage, path: str) -> Any:
    steps = [step for step in path.removeprefix("$").split(".") if step]
    return message.json_field(*steps)


@dataclass(frozen=True)
class Scheme:
    """One provider's signature, as data (see the module docstring)."""

    name: str
    detect: Detect
    header: str
    algorithm: str = "hmac-sha256"
    encoding: str = "hex"
    prefix: str = ""
    signed: str = "{body}"
    event: str | None = None  # "$.type" or "header:X-GitHub-Event"
    secret_encoding: str = "text"
    # The signature in a list (`t=123,v1=abc`): its separator, the key of the signature and of the timestamp.
    list_separator: str | None = None
    signature_key: str | None = None
    timestamp_key: str | None = None
    timestamp_header: str | None = None
    timestamp_format: str = "unix"
    id_header: str | None = None
    tolerance: int | None = DEFAULT_TOLERANCE  # seconds; None: no timestamp, no window
    also_headers: tuple[str, ...] = field(default=())  # other headers it may travel in (rotation: primary, secondary)
    # The timestamp inside the signed body instead of a header (Linear's `webhookTimestamp`):
    # re-signing rewrites that number in place, so the body changes by those digits only.
    timestamp_json: str | None = None
    future_tolerance: int | None = None  # seconds ahead accepted; None: as `tolerance` (Box: 0, HubSpot: any)
    fixed_headers: tuple[tuple[str, str], ...] = field(default=())  # sent with every signature (Box's version)

    # -- what the registry calls ------------------------------------------------------------

    def detect_message(self, message: SignedMessage) -> Detection | None:
        if not self.detect.matches(message):
            return None
        return Detection(self.name, self._event(message))

    def verify(self, message: SignedMessage, secret: str, now: float) -> Verdict:
        found = self._header_value(message)
        if found is None:
            return Verdict(UNSIGNED, f"no {self.header} header")
        header, value = found
        if self.algorithm == "token":
            return Verdict(VALID, f"{header} matches") if matches_any(secret, [value.strip()]) else \
                Verdict(INVALID, f"{header} is not the configured token")
        parsed = self._parse(value)
        if parsed is None:
            return Verdict(MALFORMED, f"{header} is not in the form {self._shape()}")
        candidates, listed_timestamp = parsed
        timestamp = listed_timestamp or (message.headers.get(self.timestamp_header) if self.timestamp_header else None)
        if self.timestamp_json:
            found_in_body = json_at(message, self.timestamp_json)
            timestamp = str(found_in_body) if isinstance(found_in_body, int | float) and not isinstance(found_in_body, bool) else None
        if self.timestamped() and not timestamp:
            return Verdict(MALFORMED, f"no timestamp ({self.timestamp_header or self.timestamp_key})")
        try:
            key = self._key(secret)
        except ValueError:
            return Verdict(MALFORMED, f"the secret is not {self.secret_encoding}")
        expected = self._signature(key, message, timestamp)
        if not matches_any(expected, candidates):
            return Verdict(INVALID, "body differs from what was signed, or the secret is wrong")
        if timestamp and self.tolerance is not None:
            seconds = parse_timestamp(timestamp, self.timestamp_format)
            if seconds is None:
                return Verdict(MALFORMED, f"timestamp {timestamp!r} is not {self.timestamp_format}")
            late = timestamp_verdict(int(seconds), now, self.tolerance, future_too=self.future_tolerance is None)
            if late is not None:
                return late
            if self.future_tolerance is not None and seconds - now > self.future_tolerance:
                return Verdict(EXPIRED, f"timestamp {seconds - now:.0f} s in the future, tolerance {self.future_tolerance} s",
                               now - seconds)
        return Verdict(VALID, f"{header} matches")

    def sign(self, message: SignedMessage, secret: str, now: float) -> dict[str, str]:
        if self.algorithm == "token":
            return {self.header: secret}
        timestamp = format_timestamp(now, self.timestamp_format) if self.timestamped() else None
        if self.timestamp_json:  # sign_body put it there
            timestamp = None
        signature = self._signature(self._key(secret), message, timestamp)
        headers: dict[str, str] = {}
        if self.list_separator:
            parts = [f"{self.timestamp_key}={timestamp}"] if self.timestamp_key and timestamp else []
            parts.append(f"{self.signature_key}={signature}")
            headers[self.header] = self.list_separator.join(parts)
        else:
            headers[self.header] = self.prefix + signature
        if self.timestamp_header and timestamp:
            headers[self.timestamp_header] = timestamp
        headers.update(self.fixed_headers)
        return headers

    def sign_body(self, message: SignedMessage, secret: str, now: float) -> bytes:
        """The body with its signed timestamp set to now (only for `timestamp_json`)."""
        assert self.timestamp_json is not None
        return set_json_number(message.body, self.timestamp_json, format_timestamp(now, self.timestamp_format))

    @property
    def signature_headers(self) -> tuple[str, ...]:
        return (self.header, *self.also_headers)

    # -- the parts ---------------------------------------------------------------------------

    def timestamped(self) -> bool:
        """Whether its signatures carry a timestamp (a header, a list entry or a body field)."""
        return "{timestamp}" in self.signed or bool(self.timestamp_key and self.list_separator) or bool(self.timestamp_json)

    def _event(self, message: SignedMessage) -> str | None:
        if self.event is None:
            return None
        if self.event.startswith("header:"):
            return message.headers.get(self.event.removeprefix("header:").strip())
        value = json_at(message, self.event)
        return str(value) if isinstance(value, str | int) else None

    def _header_value(self, message: SignedMessage) -> tuple[str, str] | None:
        for header in self.signature_headers:
            value = message.headers.get(header)
            if value is not None:
                return header, value
        return None

    def _shape(self) -> str:
        if self.list_separator:
            parts = [f"{self.timestamp_key}=…"] if self.timestamp_key else []
            return self.list_separator.join([*parts, f"{self.signature_key}=…"])
        return f"{self.prefix}<{self.encoding}>"

    def _parse(self, value: str) -> tuple[list[str], str | None] | None:
        """The signatures a header holds (several while keys rotate) and a timestamp it carries."""
        if self.list_separator:
            signatures, timestamp = [], None
            for part in value.split(self.list_separator):
                key, eq, item = part.strip().partition("=")
                if not eq:
                    continue
                if key == self.signature_key:
                    signatures.append(item)
                elif key == self.timestamp_key:
                    timestamp = item
            return (signatures, timestamp) if signatures else None
        candidates = [v.strip() for v in value.split(",")] if self.prefix and "," in value else [value.strip()]
        if self.prefix and not all(c.startswith(self.prefix) for c in candidates):
            return None
        return [c[len(self.prefix):] for c in candidates], None

    def _key(self, secret: str) -> bytes:
        if self.secret_encoding == "hex":
            return bytes.fromhex(secret)
        if self.secret_encoding == "base64":
            try:
                return base64.b64decode(secret, validate=True)
            except binascii.Error as exc:
                raise ValueError(str(exc)) from None
        return secret.encode("utf-8")

    def _signature(self, key: bytes, message: SignedMessage, timestamp: str | None) -> str:
        digest = hmac_digest(key, self._signed_bytes(message, timestamp), ALGORITHMS[self.algorithm] or "sha256")
        return digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode("ascii")

    def _signed_bytes(self, message: SignedMessage, timestamp: str | None) -> bytes:
        values = {"timestamp": (timestamp or "").encode(), "method": message.method.encode(), "url": message.url.encode(),
                  "id": (message.headers.get(self.id_header) or "").encode() if self.id_header else b""}
        out = bytearray()
        position = 0
        for match in _PLACEHOLDER.finditer(self.signed):
            out += self.signed[position:match.start()].encode()
            out += message.body if match.group(1) == "body" else values[match.group(1)]
            position = match.end()
        out += self.signed[position:].encode()
        return bytes(out)


def set_json_number(body: bytes, path: str, number: str) -> bytes:
    """`body` with the top-level number at `path` replaced in place (every other byte kept),
    or added first in the object when it is missing."""
    key = path.removeprefix("$.")
    pattern = re.compile(rb'("' + re.escape(key.encode()) + rb'"\s*:\s*)-?\d+(?:\.\d+)?')
    changed, count = pattern.subn(lambda m: m.group(1) + number.encode(), body, count=1)
    if count:
        return changed
    start = body.find(b"{")
    if start < 0:
        return body
    rest = body[start + 1:].lstrip()
    comma = b"" if rest.startswith(b"}") else b","
    return body[:start + 1] + b'"' + key.encode() + b'":' + number.encode() + comma + body[start + 1:]


def parse_timestamp(text: str, fmt: str) -> float | None:
    try:
        if fmt in ("unix", "unix-ms"):
            # Digits only, as senders write them: float() would also take "1e400", "inf" and "nan".
            number = text.strip()
            if not (number.isascii() and number.replace(".", "", 1).isdigit()) or len(number) > 20:
                return None
            return float(number) / (1000 if fmt == "unix-ms" else 1)
        # RFC 3339 may carry nanoseconds (Twitch); Python reads at most microseconds.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def format_timestamp(now: float, fmt: str) -> str:
    if fmt == "unix":
        return str(int(now))
    if fmt == "unix-ms":
        return str(int(now * 1000))
    return datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- user-defined providers ---------------------------------------------------------------------

TABLE_KEYS = ("detect", "header", "algorithm", "encoding", "prefix", "signed", "event", "secret_encoding",
              "list_separator", "signature_key", "timestamp_key", "timestamp_header", "timestamp_format", "id_header",
              "tolerance", "timestamp_json")
DETECT_KEYS = ("header", "user_agent", "path", "json")


def scheme_from_table(name: str, table: Any) -> Scheme:
    """A `[providers.NAME]` table of hookinspect.toml as a Scheme; every mistake is a UsageError naming it."""
    where = f"[providers.{name}]"
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise UsageError(f"{where}: a provider name is lower-case letters, digits, - and _")
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    for key in table:
        if key not in TABLE_KEYS:
            raise UsageError(f"{where}: unknown key {key!r}{did_you_mean(key, TABLE_KEYS)}", "keys: " + ", ".join(TABLE_KEYS))
    detect = table.get("detect")
    if not isinstance(detect, dict) or not detect:
        raise UsageError(f"{where} needs detect = {{ header = \"…\" }} (or user_agent, path, json)")
    for key in detect:
        if key not in DETECT_KEYS:
            raise UsageError(f"{where}: unknown detect key {key!r}{did_you_mean(key, DETECT_KEYS)}", "keys: " + ", ".join(DETECT_KEYS))
    if "header" not in table:
        raise UsageError(f"{where} needs header = \"…\": where the signature travels")
    choices = {"algorithm": ALGORITHMS, "encoding": ENCODINGS, "secret_encoding": SECRET_ENCODINGS,
               "timestamp_format": TIMESTAMP_FORMATS}
    for key, allowed in choices.items():
        if key in table and table[key] not in allowed:
            raise UsageError(f"{where}: {key} = {table[key]!r}{did_you_mean(str(table[key]), allowed)}", "one of " + ", ".join(allowed))
    signed = str(table.get("signed", "{body}"))
    for placeholder in _PLACEHOLDER.findall(signed):
        if placeholder not in PLACEHOLDERS:
            raise UsageError(f"{where}: signed has {{{placeholder}}}{did_you_mean(placeholder, PLACEHOLDERS)}",
                             "placeholders: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    if "{timestamp}" in signed and not (table.get("timestamp_header") or table.get("timestamp_key")
                                        or table.get("timestamp_json")):
        raise UsageError(f"{where}: signed uses {{timestamp}}: say where it travels (timestamp_header)")
    if "timestamp_json" in table and not re.fullmatch(r"\$(\.[A-Za-z0-9_-]+)+", str(table["timestamp_json"])):
        raise UsageError(f"{where}: timestamp_json is a JSON path to a number in the body, e.g. \"$.webhookTimestamp\"")
    if "{id}" in signed and not table.get("id_header"):
        raise UsageError(f"{where}: signed uses {{id}}: say where it travels (id_header)")
    if table.get("list_separator") and not table.get("signature_key"):
        raise UsageError(f"{where}: a list_separator needs the signature_key (v1 in t=…,v1=…)")
    tolerance = table.get("tolerance", DEFAULT_TOLERANCE)
    if not isinstance(tolerance, int) or isinstance(tolerance, bool) or tolerance < 0:
        raise UsageError(f"{where}: tolerance is a number of seconds")
    event = table.get("event")
    if event is not None and not (str(event).startswith("$") or str(event).startswith("header:")):
        raise UsageError(f"{where}: event is a JSON path ($.type) or header:NAME")
    return Scheme(name=name, detect=Detect(**{k: str(v) for k, v in detect.items()}), header=str(table["header"]),
                  **{k: (str(v) if k != "tolerance" else v) for k, v in table.items()
                     if k not in ("detect", "header", "tolerance")}, tolerance=tolerance)
