"""Masking secrets before deliveries leave the store: credential and signature headers,
token-like query values, and JSON paths the user names (`[redact]` in hookinspect.toml)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from hookinspect.body import NOT_JSON, parse_json
from hookinspect.errors import UsageError
from hookinspect.filters import parse_json_path, walk_json
from hookinspect.model import Delivery, Headers

REDACTED = "REDACTED"
# Masked by default: credentials and signatures (a signature plus the body lets anyone
# replay the event, and it must never sit in a bug report).
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "stripe-signature", "x-hub-signature", "x-hub-signature-256", "x-shopify-hmac-sha256",
    "shopify-hmac-sha256", "x-slack-signature", "x-twilio-signature", "webhook-signature",
    "svix-signature", "x-signature", "x-webhook-signature",
})
SECRET_QUERY_KEYS = frozenset({"token", "access_token", "api_key", "apikey", "key", "secret", "signature", "sig", "password"})


@dataclass(frozen=True)
class Redaction:
    headers: frozenset[str] = SECRET_HEADERS
    query_keys: frozenset[str] = SECRET_QUERY_KEYS
    json_paths: tuple[str, ...] = ()  # e.g. "$.data.object.customer_email"

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


def redact(delivery: Delivery, rules: Redaction = Redaction()) -> tuple[Delivery, list[str]]:
    """A copy with secret headers, query values and configured JSON paths masked, and what was masked."""
    masked: list[str] = []
    pairs = []
    for name, value in delivery.headers:
        if name.lower() in rules.headers:
            masked.append(f"header {name}")
            pairs.append((name, REDACTED))
        else:
            pairs.append((name, value))
    query_parts = []
    for part in delivery.query.split("&") if delivery.query else []:
        key, eq, _value = part.partition("=")
        if eq and key.lower() in rules.query_keys:
            masked.append(f"query {key}")
            query_parts.append(f"{key}={REDACTED}")
        else:
            query_parts.append(part)
    body = delivery.body
    if rules.json_paths:
        body, in_body = _mask_json_paths(body, rules.json_paths)
        masked += in_body
        if in_body:
            pairs = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in pairs]
    return replace(delivery, headers=Headers(pairs), query="&".join(query_parts), body=body), masked


DEFAULT_REDACTION = Redaction()
