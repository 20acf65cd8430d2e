"""Export formats (pure functions in a registry) and HAR/JSON import.

Every exporter takes deliveries (with their attempts) and options as arguments and
returns text or bytes; nothing here reads global settings. Shell arguments are always
`shlex.quote`d, and bodies that are not UTF-8 travel through base64, never as a broken string.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hookinspect import __version__
from hookinspect.body import NOT_JSON, decode_body_fields, is_valid_utf8, parse_json
from hookinspect.errors import UsageError
from hookinspect.filters import parse_json_path, walk_json
from hookinspect.forward import HOP_BY_HOP, target_url
from hookinspect.model import (
    Attempt,
    Delivery,
    Headers,
    Response,
    SentRequest,
    new_id,
)
from hookinspect.store.fixtures import expectation_from, fixture_document, load_fixture_document
from hookinspect.store.sqlite import Store

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


@dataclass
class ExportItem:
    delivery: Delivery
    attempts: list[Attempt]


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


def original_url(delivery: Delivery, scheme: str = "http") -> str:
    host = delivery.headers.get("host") or "localhost"
    return f"{scheme}://{host}{delivery.target}"


def _send_headers(delivery: Delivery, drop_host: bool) -> list[tuple[str, str]]:
    skip = set(HOP_BY_HOP) | {"content-length"} | ({"host"} if drop_host else set())
    return [(k, v) for k, v in delivery.headers if k.lower() not in skip]


def render_curl(items: list[ExportItem], to: str | None = None) -> str:
    """One curl command per delivery that sends the same method, headers and body bytes."""
    commands = []
    for item in items:
        d = item.delivery
        url = target_url(to, d.path, d.query) if to else original_url(d)
        args = ["curl", "-sS", "-X", d.method, url]
        present = {k.lower() for k, _ in d.headers}
        for name, value in _send_headers(d, drop_host=bool(to)):
            args += ["-H", f"{name}: {value}" if value else f"{name};"]
        for default in ("User-Agent", "Accept"):  # curl adds these; the sender did not
            if default.lower() not in present:
                args += ["-H", f"{default}:"]
        if d.body and is_valid_utf8(d.body) and "\0" not in d.body.decode():
            args += ["--data-binary", d.body.decode()]
            commands.append(" ".join(_quote(a) for a in args))
        elif d.body:
            encoded = base64.b64encode(d.body).decode()
            args += ["--data-binary", "@-"]
            commands.append(f"printf '%s' {encoded} | base64 -d | " + " ".join(_quote(a) for a in args))
        else:
            commands.append(" ".join(_quote(a) for a in args))
    return "\n".join(commands) + "\n"


def render_httpie(items: list[ExportItem], to: str | None = None) -> str:
    """HTTPie commands; the body always goes through stdin so it is sent as-is."""
    commands = []
    for item in items:
        d = item.delivery
        url = target_url(to, d.path, d.query) if to else original_url(d)
        args = ["http", "--ignore-stdin" if not d.body else "", d.method, url]
        args = [a for a in args if a]
        present = {k.lower() for k, _ in d.headers}
        for name, value in _send_headers(d, drop_host=bool(to)):
            args.append(f"{name}:{value}" if value else f"{name};")
        for default in ("User-Agent", "Accept", "Accept-Encoding"):
            if default.lower() not in present:
                args.append(f"{default}:")
        line = " ".join(_quote(a) for a in args)
        if d.body:
            line = f"printf '%s' {base64.b64encode(d.body).decode()} | base64 -d | {line}"
        commands.append(line)
    return "\n".join(commands) + "\n"


def _quote(arg: str) -> str:
    return shlex.quote(arg)


def render_raw(items: list[ExportItem], to: str | None = None) -> bytes:
    """The HTTP/1.1 request as it arrived (a de-chunked body gets a Content-Length)."""
    out = bytearray()
    for item in items:
        d = item.delivery
        out += f"{d.method} {d.target} HTTP/{d.http_version}\r\n".encode("utf-8", "surrogateescape")
        chunked = any(k.lower() == "transfer-encoding" for k, _ in d.headers)
        for name, value in d.headers.raw():
            if chunked and name.lower() == b"transfer-encoding":
                continue
            out += name + b": " + value + b"\r\n"
        if chunked:
            out += f"Content-Length: {len(d.body)}\r\n".encode()
        out += b"\r\n" + d.body
    return bytes(out)


def render_json(items: list[ExportItem], to: str | None = None) -> str:
    """The `show --json` shape, one object per delivery, as a JSON array."""
    data = []
    for item in items:
        obj = item.delivery.to_dict()
        obj["attempts"] = [a.to_dict() for a in item.attempts]
        data.append(obj)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _har_content(headers: Headers, body: bytes) -> dict[str, Any]:
    mime = headers.get("content-type") or ""
    content: dict[str, Any] = {"size": len(body), "mimeType": mime}
    if is_valid_utf8(body):
        content["text"] = body.decode()
    else:
        content["text"] = base64.b64encode(body).decode()
        content["encoding"] = "base64"
    return content


def _har_time(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def render_har(items: list[ExportItem], to: str | None = None) -> str:
    """A HAR 1.2 document: one entry per delivery, the response of its latest attempt."""
    entries = []
    for item in items:
        d = item.delivery
        last = item.attempts[-1] if item.attempts else None
        post = _har_content(d.headers, d.body)
        request = {
            "method": d.method, "url": target_url(to, d.path, d.query) if to else original_url(d),
            "httpVersion": f"HTTP/{d.http_version}", "cookies": [],
            "headers": [{"name": k, "value": v} for k, v in d.headers],
            "queryString": [{"name": k, "value": v} for k, v in parse_qsl(d.query, keep_blank_values=True)],
            "headersSize": -1, "bodySize": len(d.body),
        }
        if d.body or d.method not in ("GET", "HEAD"):
            request["postData"] = {"mimeType": post["mimeType"], "text": post["text"], "params": []}
            if "encoding" in post:
                request["postData"]["encoding"] = "base64"  # not in HAR 1.2 for postData; Chrome and Firefox read it
        if last is not None and last.response is not None:
            resp = last.response
            response = {
                "status": resp.status, "statusText": resp.reason, "httpVersion": f"HTTP/{resp.http_version}",
                "cookies": [], "headers": [{"name": k, "value": v} for k, v in resp.headers],
                "content": _har_content(resp.headers, resp.body), "redirectURL": resp.headers.get("location") or "",
                "headersSize": -1, "bodySize": len(resp.body),
            }
        else:
            response = {"status": 0, "statusText": (last.error_message or "") if last else "", "httpVersion": "",
                        "cookies": [], "headers": [], "content": {"size": 0, "mimeType": ""}, "redirectURL": "",
                        "headersSize": -1, "bodySize": -1, **({"_error": last.error_message} if last and last.error_message else {})}
        wait = last.latency_ms if last is not None and last.latency_ms is not None else 0
        entries.append({
            "startedDateTime": _har_time(d.received_us), "time": wait, "request": request, "response": response,
            "cache": {}, "timings": {"send": 0, "wait": wait, "receive": 0},
            "_hookinspect": {"seq": d.seq, "id": d.id, "remote_addr": d.remote_addr,
                             "attempts": [a.to_dict() for a in item.attempts]},
        })
    doc = {"log": {"version": "1.2", "creator": {"name": "hookinspect", "version": __version__}, "entries": entries}}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render_fixture(items: list[ExportItem], to: str | None = None, with_json: bool = False) -> str:
    """A fixture file (store/fixtures.py): requests plus expectations from the latest success."""
    records = []
    for item in items:
        successes = [a for a in item.attempts if a.is_success]
        records.append((item.delivery, expectation_from(successes[-1] if successes else None, with_json)))
    return fixture_document(records)


@dataclass(frozen=True)
class Exporter:
    render: Callable[..., str | bytes]
    redact_by_default: bool
    extension: str


EXPORTERS: dict[str, Exporter] = {
    "curl": Exporter(render_curl, False, "sh"),
    "httpie": Exporter(render_httpie, False, "sh"),
    "raw": Exporter(render_raw, False, "http"),
    "har": Exporter(render_har, True, "har"),
    "json": Exporter(render_json, True, "json"),
    "fixture": Exporter(render_fixture, True, "json"),
}


def export(items: list[ExportItem], fmt: str, *, to: str | None = None, redact_secrets: bool | None = None,
           rules: Redaction = Redaction(), **format_options: Any) -> tuple[str | bytes, list[str]]:
    """Render `items` in `fmt`; returns the output and what was masked."""
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise UsageError(f"unknown format {fmt!r}", "choose one of " + ", ".join(EXPORTERS))
    masked: list[str] = []
    if redact_secrets if redact_secrets is not None else exporter.redact_by_default:
        redacted = []
        for item in items:
            delivery, what = redact(item.delivery, rules)
            masked += [f"#{item.delivery.seq} {w}" for w in what]
            redacted.append(ExportItem(delivery, item.attempts))
        items = redacted
    return exporter.render(items, to, **format_options), masked


# -- import -----------------------------------------------------------------------------

def _parse_har_time(value: str | None) -> int:
    if not value:
        return int(datetime.now(UTC).timestamp() * 1e6)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e6)
    except ValueError:
        return int(datetime.now(UTC).timestamp() * 1e6)


def _har_body(obj: dict[str, Any] | None) -> bytes:
    if not obj or obj.get("text") is None:
        return b""
    if obj.get("encoding") == "base64":
        try:
            return base64.b64decode(obj["text"], validate=False)
        except ValueError:
            raise UsageError("a HAR entry has a body marked base64 that is not base64") from None
    return str(obj["text"]).encode("utf-8", "surrogateescape")


def load_har(document: dict[str, Any]) -> list[ExportItem]:
    """Entries of any HAR (ours or a browser's) as deliveries; responses become attempts."""
    try:
        entries = document["log"]["entries"]
    except (KeyError, TypeError):
        raise UsageError("not a HAR file: no log.entries") from None
    items = []
    for number, entry in enumerate(entries, start=1):
        try:
            req = entry["request"]
            parts = urlsplit(req["url"])
            headers = Headers((h["name"], h["value"]) for h in req.get("headers", []) if not h["name"].startswith(":"))
            if "host" not in headers and parts.netloc:
                headers = Headers([("Host", parts.netloc), *headers])
            version = str(req.get("httpVersion") or "HTTP/1.1").upper().removeprefix("HTTP/")
            delivery = Delivery(
                method=req["method"].upper(), path=parts.path or "/", query=parts.query,
                http_version=version if version in ("1.0", "1.1", "2", "2.0", "3") else "1.1",
                headers=headers, body=_har_body(req.get("postData")), received_us=_parse_har_time(entry.get("startedDateTime")),
                source="import", remote_addr=(entry.get("_hookinspect") or {}).get("remote_addr") or entry.get("serverIPAddress"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"HAR entry {number} is malformed (missing {exc})") from None
        attempts: list[Attempt] = []
        resp = entry.get("response") or {}
        if isinstance(resp.get("status"), int) and resp["status"] > 0:
            response_headers = Headers((h["name"], h["value"]) for h in resp.get("headers", []) if not h["name"].startswith(":"))
            attempts.append(Attempt(
                delivery_seq=0, kind="import", target_url=req["url"],
                request=SentRequest(method=delivery.method, url=req["url"], headers=delivery.headers, body=delivery.body),
                response=Response(status=resp["status"], reason=resp.get("statusText") or "", headers=response_headers,
                                  body=_har_body(resp.get("content"))),
                latency_ms=float(entry.get("time") or 0), started_us=delivery.received_us, id=new_id(),
            ))
        items.append(ExportItem(delivery, attempts))
    return items


def load_json(document: Any) -> list[ExportItem]:
    """Our own `export --format json` / `show --json` output."""
    objects = document if isinstance(document, list) else [document]
    items = []
    for number, obj in enumerate(objects, start=1):
        try:
            delivery = Delivery.from_dict(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"JSON entry {number} is not a delivery ({exc})") from None
        delivery.source = "import"
        attempts = []
        for a in obj.get("attempts") or []:
            req, resp = a["request"], a.get("response")
            attempts.append(Attempt(
                delivery_seq=0, kind=a.get("kind") or "import", target_url=a["target_url"],
                request=SentRequest(method=req["method"], url=req["url"], headers=Headers(map(tuple, req["headers"])),
                                    body=decode_body_fields(req)),
                response=None if resp is None else Response(status=resp["status"], reason=resp.get("reason") or "",
                                                            headers=Headers(map(tuple, resp["headers"])), body=decode_body_fields(resp)),
                response_truncated=bool(resp and resp.get("truncated")), latency_ms=a.get("latency_ms"),
                error_kind=a.get("error_kind"), error_message=a.get("error_message"), id=new_id(),
                started_us=_parse_har_time(a.get("started_at")),
            ))
        items.append(ExportItem(delivery, attempts))
    return items


def parse_import(data: bytes, name: str = "input") -> list[ExportItem]:
    """Detect the format (HAR, fixture file or our JSON) and load it."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise UsageError(f"{name} is not JSON (HAR and hookinspect JSON exports are)") from None
    if isinstance(document, dict) and "log" in document:
        return load_har(document)
    if isinstance(document, dict) and "meta" in document and "deliveries" in document:
        return [ExportItem(record.delivery, []) for record in load_fixture_document(document, name)]
    if isinstance(document, list | dict):
        return load_json(document)
    raise UsageError(f"{name}: neither a HAR file nor a hookinspect JSON export")


def import_items(store: Store, items: list[ExportItem]) -> tuple[int, int]:
    """Store imported deliveries with their attempts; duplicates (same content hash) are skipped."""
    known = store.content_hashes()
    added = skipped = 0
    with store.transaction():
        for item in items:
            digest = item.delivery.content_hash()
            if digest in known:
                skipped += 1
                continue
            known.add(digest)
            seq = store.insert_deliveries([item.delivery], [digest])[0]
            for attempt in item.attempts:
                attempt.delivery_seq = seq
                store.add_attempt(attempt)
            added += 1
    return added, skipped
