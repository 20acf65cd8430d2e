"""HAR 1.2, both ways: deliveries (with the response of their latest attempt) out, and any
HAR (ours or a browser's) in, its responses becoming attempts."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hookinspect import __version__
from hookinspect.body import is_valid_utf8, json_text
from hookinspect.errors import UsageError, one_line
from hookinspect.formats.targets import target_url
from hookinspect.model import Attempt, Delivery, ExportItem, Headers, Response, SentRequest
from hookinspect.values import format_time_us, new_id, now_us, parse_time_us


def _har_content(headers: Headers, body: bytes) -> dict[str, Any]:
    mime = headers.get("content-type") or ""
    content: dict[str, Any] = {"size": len(body), "mimeType": mime}
    if is_valid_utf8(body):
        content["text"] = body.decode()
    else:
        content["text"] = base64.b64encode(body).decode()
        content["encoding"] = "base64"
    return content


def render_har(items: list[ExportItem], to: str | None = None) -> str:
    """A HAR 1.2 document: one entry per delivery, the response of its latest attempt."""
    entries = []
    for item in items:
        d = item.delivery
        last = item.attempts[-1] if item.attempts else None
        post = _har_content(d.headers, d.body)
        request = {
            "method": d.method, "url": target_url(to, d.path, d.query) if to else d.original_url(),
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
            "startedDateTime": format_time_us(d.received_us), "time": wait, "request": request, "response": response,
            "cache": {}, "timings": {"send": 0, "wait": wait, "receive": 0},
            "_hookinspect": {"seq": d.seq, "id": d.id, "remote_addr": d.remote_addr, "provider": d.provider,
                             "event_type": d.event_type, "verdict": d.verdict, "verdict_reason": d.verdict_reason,
                             # HAR has no place for trailer fields; ours keeps them here.
                             **({"trailers": [[k, v] for k, v in d.trailers]} if d.trailers else {}),
                             "attempts": [a.to_dict() for a in item.attempts]},
        })
    doc = {"log": {"version": "1.2", "creator": {"name": "hookinspect", "version": __version__}, "entries": entries}}
    return json_text(doc) + "\n"


def _parse_har_time(value: str | None) -> int:
    try:
        return parse_time_us(value) if value else now_us()
    except ValueError:
        return now_us()


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
        ours = entry.get("_hookinspect") if isinstance(entry, dict) else None
        ours = ours if isinstance(ours, dict) else {}
        try:
            req = entry["request"]
            parts = urlsplit(req["url"])
            headers = Headers((h["name"], h["value"]) for h in req.get("headers", []) if not h["name"].startswith(":"))
            if "host" not in headers and parts.netloc:
                headers = Headers([("Host", parts.netloc), *headers])
            version = str(req.get("httpVersion") or "HTTP/1.1").upper().removeprefix("HTTP/")
            delivery = Delivery(
                method=req["method"], path=parts.path or "/", query=parts.query,
                http_version=version if version in ("1.0", "1.1", "2", "2.0", "3") else "1.1",
                headers=headers, body=_har_body(req.get("postData")), received_us=_parse_har_time(entry.get("startedDateTime")),
                source="import", remote_addr=ours.get("remote_addr") or entry.get("serverIPAddress"),
                provider=ours.get("provider"), event_type=ours.get("event_type"), verdict=ours.get("verdict"),
                verdict_reason=ours.get("verdict_reason"),
                trailers=Headers((str(k), str(v)) for k, v in ours.get("trailers") or []),
            )
            if ours.get("id"):
                delivery.id = str(ours["id"])
            # Ours keeps every attempt; a browser's HAR has one response, which becomes one.
            attempts = [Attempt.from_dict(a, kind="import") for a in ours.get("attempts") or []]
            resp = entry.get("response") or {}
            if not ours.get("attempts") and isinstance(resp.get("status"), int) and resp["status"] > 0:
                response_headers = Headers((h["name"], h["value"]) for h in resp.get("headers", [])
                                           if not h["name"].startswith(":"))
                attempts.append(Attempt(
                    delivery_seq=0, kind="import", target_url=req["url"],
                    request=SentRequest(method=delivery.method, url=req["url"], headers=delivery.headers, body=delivery.body),
                    response=Response(status=resp["status"], reason=resp.get("statusText") or "", headers=response_headers,
                                      body=_har_body(resp.get("content"))),
                    latency_ms=float(entry.get("time") or 0), started_us=delivery.received_us, id=new_id(),
                ))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else one_line(exc, 200)
            raise UsageError(f"HAR entry {number} is malformed ({reason})") from None
        items.append(ExportItem(delivery, attempts, has_own_id=bool(ours.get("id"))))
    return items
