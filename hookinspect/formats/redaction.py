"""Masking secrets before deliveries leave the store: credential and signature headers,
token-like query values, and JSON paths the user names (`[redact]` in hookinspect.toml)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from hookinspect.body import NOT_JSON, parse_json
from hookinspect.errors import UsageError
from hookinspect.formats.filters import parse_json_path, walk_json
from hookinspect.model import Attempt, Delivery, ExportItem, Headers, mask_userinfo  # noqa: F401 (shown URLs)

REDACTED = "REDACTED"
# Masked by default: credentials and signatures (a signature plus the body lets anyone
# replay the event, and it must never sit in a bug report). Besides these names, any header
# whose name contains one of SECRET_HEADER_WORDS is masked: providers invent new ones.
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "stripe-signature", "x-hub-signature", "x-hub-signature-256", "x-shopify-hmac-sha256",
    "shopify-hmac-sha256", "x-slack-signature", "x-twilio-signature", "webhook-signature",
    "svix-signature", "x-signature", "x-webhook-signature", "x-gitlab-token", "x-auth-token",
    "x-webhook-secret", "x-webhook-token", "x-access-token", "x-api-token", "x-amz-security-token",
    "x-square-hmacsha256-signature", "x-razorpay-signature", "paddle-signature", "x-hubspot-signature-v3",
})
SECRET_HEADER_WORDS = ("signature", "token", "secret", "password", "api-key", "apikey", "auth", "cookie", "hmac")
_SECRET_HEADER_WORD = re.compile("|".join(map(re.escape, SECRET_HEADER_WORDS)))  # one C scan, not nine
SECRET_QUERY_KEYS = frozenset({
    "token", "access_token", "refresh_token", "id_token", "api_key", "apikey", "key", "secret", "client_secret",
    "signature", "sig", "password", "code", "auth", "session",
})
SECRET_QUERY_WORDS = ("token", "secret", "password", "signature", "apikey", "api_key", "api-key")


@dataclass(frozen=True)
class Redaction:
    headers: frozenset[str] = SECRET_HEADERS
    query_keys: frozenset[str] = SECRET_QUERY_KEYS
    json_paths: tuple[str, ...] = ()  # e.g. "$.data.object.customer_email"
    # Signature headers (a name with "signature" or "hmac" in it) left as they are: a recording
    # keeps them so that a delivery still verifies; an export masks them.
    keep_signatures: bool = False

    @classmethod
    def from_config(cls, table: Any) -> Redaction:
        """Defaults plus `[redact] headers = [...], query = [...], json = [...]` from the config file."""
        if not table:
            return cls()
        if not isinstance(table, dict):
            raise UsageError("config: [redact] must be a table with headers, query and json lists")
        json_paths = tuple(str(p) for p in table.get("json") or [])
        for path in json_paths:
            parse_json_path(path)  # a bad path is reported now, not at export time
        return cls(SECRET_HEADERS | {str(h).lower() for h in table.get("headers") or []},
                   SECRET_QUERY_KEYS | {str(q).lower() for q in table.get("query") or []}, json_paths)

    def is_secret_header(self, name: str) -> bool:
        lowered = name.lower()
        if self.keep_signatures and ("signature" in lowered or "hmac" in lowered):
            return False
        return lowered in self.headers or _SECRET_HEADER_WORD.search(lowered) is not None

    def is_secret_query_key(self, key: str) -> bool:
        lowered = unquote_plus(key).lower()
        return lowered in self.query_keys or any(word in lowered for word in SECRET_QUERY_WORDS)


DEFAULT_REDACTION = Redaction()


def _mask_json_paths(body: bytes, paths: tuple[str, ...]) -> tuple[bytes, list[str]]:
    """The body with the values at `paths` replaced by REDACTED (re-serialised only if one was found)."""
    doc = parse_json(body)
    if doc is NOT_JSON:
        return body, []
    masked = []
    for path in paths:
        steps = parse_json_path(path)
        if not steps:
            continue
        found, parent = walk_json(doc, steps[:-1])
        last = steps[-1]
        if found and isinstance(parent, dict) and isinstance(last, str) and last in parent:
            parent[last] = REDACTED
            masked.append(f"body {path}")
        elif found and isinstance(parent, list) and isinstance(last, int) and -len(parent) <= last < len(parent):
            parent[last] = REDACTED
            masked.append(f"body {path}")
    if not masked:
        return body, []
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(), masked


def redact_query(query: str, rules: Redaction = DEFAULT_REDACTION) -> tuple[str, list[str]]:
    """A raw query string with the values of secret keys masked (the rest byte for byte)."""
    masked: list[str] = []
    parts = []
    for part in query.split("&") if query else []:
        key, eq, _value = part.partition("=")
        if eq and rules.is_secret_query_key(key):
            masked.append(f"query {key}")
            parts.append(f"{key}={REDACTED}")
        else:
            parts.append(part)
    return "&".join(parts), masked


def redact_url(url: str, rules: Redaction = DEFAULT_REDACTION) -> tuple[str, list[str]]:
    """A URL with secret query values masked, and user info (`user:password@`) removed."""
    if "?" not in url and "@" not in url:
        return url, []  # nothing that could be masked
    parts = urlsplit(url)
    query, masked = redact_query(parts.query, rules)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
        masked.append("URL user info")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), masked


def _redact_message_parts(headers: Headers, body: bytes, rules: Redaction) -> tuple[Headers, bytes, list[str]]:
    masked: list[str] = []
    pairs = []
    for name, value in headers:
        if rules.is_secret_header(name):
            masked.append(f"header {name}")
            pairs.append((name, REDACTED))
        else:
            pairs.append((name, value))
    if rules.json_paths:
        body, in_body = _mask_json_paths(body, rules.json_paths)
        masked += in_body
        if in_body:
            pairs = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in pairs]
    return Headers(pairs), body, masked


def redact(delivery: Delivery, rules: Redaction = DEFAULT_REDACTION) -> tuple[Delivery, list[str]]:
    """A copy with secret headers, query values and configured JSON paths masked, and what was masked."""
    headers, body, masked = _redact_message_parts(delivery.headers, delivery.body, rules)
    query, in_query = redact_query(delivery.query, rules)
    trailers, _, in_trailers = _redact_message_parts(delivery.trailers, b"", rules)  # a signature may come last
    in_headers = [what for what in masked if what.startswith("header ")]
    in_body = [what for what in masked if not what.startswith("header ")]
    in_trailers = [what.replace("header ", "trailer ", 1) for what in in_trailers]
    return (replace(delivery, headers=headers, query=query, body=body, trailers=trailers),
            in_headers + in_trailers + in_query + in_body)


def redact_attempt(attempt: Attempt, rules: Redaction = DEFAULT_REDACTION) -> tuple[Attempt, list[str]]:
    """A copy of an attempt with the same masking over what was sent, where, and what came back."""
    request = attempt.request
    headers, body, masked = _redact_message_parts(request.headers, request.body, rules)
    url, in_url = redact_url(request.url, rules)
    target, in_target = redact_url(attempt.target_url, rules)
    response = attempt.response
    if response is not None:
        response_headers, response_body, in_response = _redact_message_parts(response.headers, response.body, rules)
        response = replace(response, headers=response_headers, body=response_body)
        masked += [f"response {what}" for what in in_response]
    return replace(attempt, request=replace(request, headers=headers, url=url, body=body), target_url=target,
                   response=response), masked + in_url + [w for w in in_target if w not in in_url]


def redact_item(item: ExportItem, rules: Redaction = DEFAULT_REDACTION) -> tuple[ExportItem, list[str]]:
    """One pass over everything an export writes of a delivery: the delivery and every attempt."""
    delivery, masked = redact(item.delivery, rules)
    attempts = []
    for attempt in item.attempts:
        clean, what = redact_attempt(attempt, rules)
        attempts.append(clean)
        masked += [f"attempt {attempt.number or ''} {w}".replace("  ", " ") for w in what]
    return ExportItem(delivery, attempts), masked
