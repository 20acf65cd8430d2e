"""Send a delivery to a target exactly as captured and record the Attempt.

One shared httpx.AsyncClient (connection pooling), redirects never followed, the
response stored as it came (raw bytes, no decoding). A send that gets no response is an
Attempt with an error kind, never a made-up status.

URL rule (documented in the README): the delivery's path is appended to a target whose
path is empty or ends with "/" (`http://localhost:3000` + `/stripe/hook`); a target with
any other path is used as is (`http://localhost:3000/webhooks`). The delivery's query
string is appended to the target's own query in both cases.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from hookinspect.errors import UsageError
from hookinspect.model import Attempt, Delivery, Headers, Response, SentRequest

# Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the ones the
# client recomputes; they are never copied from the captured request.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
RECOMPUTED = frozenset({"host", "content-length"})
# Responses are stored in full up to this size; beyond it the rest is not read and the
# attempt is marked truncated (a 20 MiB answer is still kept whole).
MAX_RESPONSE_BODY = 32 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0


def validate_target(url: str) -> str:
    """A usable http(s) URL or a UsageError naming what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http(s) URL", "example: --to http://localhost:3000/webhooks")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"{url!r} has an invalid port") from None
    return url.strip()


def target_url(target: str, path: str, query: str) -> str:
    """Where a delivery goes on a target (see the module docstring for the rule)."""
    parts = urlsplit(target)
    base_path = parts.path
    if not base_path or base_path.endswith("/"):
        full_path = base_path.rstrip("/") + (path if path.startswith("/") else "/" + path)
    else:
        full_path = base_path
    full_query = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit((parts.scheme, parts.netloc, full_path, full_query, ""))


@dataclass
class RequestEdits:
    """Changes for one send; the stored delivery is never modified."""

    set_headers: list[tuple[str, str]] = field(default_factory=list)
    drop_headers: list[str] = field(default_factory=list)
    body: bytes | None = None
    method: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.set_headers or self.drop_headers or self.body is not None or self.method)


# A re-signer (signing/) gets the request about to be sent and returns its new headers.
Resigner = Callable[[SentRequest], Headers]


def build_request(delivery: Delivery, target: str, edits: RequestEdits | None = None,
                  forwarded: bool = True) -> SentRequest:
    """The request to send: captured headers in order, hop-by-hop dropped, edits applied."""
    edits = edits or RequestEdits()
    url = target_url(target, delivery.path, delivery.query)
    body = edits.body if edits.body is not None else delivery.body
    headers = Headers(pair for pair in delivery.headers if pair[0].lower() not in HOP_BY_HOP)
    for name in edits.drop_headers:
        headers = headers.without(name)
    for name, value in edits.set_headers:
        headers = headers.with_set(name, value)
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    headers = headers.with_set("Host", netloc) if "host" in headers else Headers([("Host", netloc), *headers])
    if body or delivery.method not in ("GET", "HEAD", "OPTIONS", "DELETE") or "content-length" in headers:
        headers = headers.with_set("Content-Length", str(len(body)))
    if forwarded:
        original_host = delivery.headers.get("host")
        if delivery.remote_addr:
            prior = delivery.headers.get("x-forwarded-for")
            headers = headers.with_set("X-Forwarded-For", f"{prior}, {delivery.remote_addr}" if prior else delivery.remote_addr)
        if original_host and "x-forwarded-host" not in headers:
            headers = headers.with_set("X-Forwarded-Host", original_host)
        if "x-forwarded-proto" not in headers:
            headers = headers.with_set("X-Forwarded-Proto", "http")
    return SentRequest(method=edits.method or delivery.method, url=url, headers=headers, body=body)


def classify_error(exc: Exception) -> tuple[str, str]:
    """(error kind, one-line message) for a failed send."""
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", f"timed out ({exc.__class__.__name__})"
    if isinstance(exc, httpx.ConnectError):
        lowered = text.lower()
        if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered \
                or "temporary failure in name resolution" in lowered:
            return "dns", f"cannot resolve host: {text}"
        if "ssl" in lowered or "certificate" in lowered or isinstance(exc.__cause__, ssl.SSLError):
            return "tls", f"TLS error: {text}"
        return "connect", f"connection failed: {text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "reset", f"connection closed early: {text}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "reset", f"connection reset: {text}"
    if isinstance(exc, httpx.ProtocolError):
        return "protocol", text
    return "other", text


class Forwarder:
    """Sends deliveries with one pooled client; every send becomes an Attempt."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_response_body: int = MAX_RESPONSE_BODY,
                 verify_tls: bool = True, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.max_response_body = max_response_body
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, verify=verify_tls, transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Forwarder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, delivery: Delivery, target: str, *, kind: str = "replay",
                   edits: RequestEdits | None = None, resign: Resigner | None = None) -> Attempt:
        """Send once and return the Attempt (never raises for network trouble)."""
        request = build_request(delivery, target, edits)
        if resign is not None:
            request.headers = resign(request)
        return await self.send_request(delivery.seq or 0, request, target=target, kind=kind)

    async def send_request(self, delivery_seq: int, request: SentRequest, *, target: str, kind: str) -> Attempt:
        attempt = Attempt(delivery_seq=delivery_seq, kind=kind, target_url=target, request=request)
        started = time.perf_counter()
        try:
            # httpx.Request (not client.build_request) so the client adds no headers of its own.
            outgoing = httpx.Request(request.method, request.url, headers=request.headers.raw(), content=request.body)
            response = await self._client.send(outgoing, stream=True)
            try:
                body, truncated = await self._read_capped(response)
            finally:
                await response.aclose()
        except (httpx.HTTPError, OSError) as exc:
            attempt.error_kind, attempt.error_message = classify_error(exc)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise
        else:
            attempt.response = Response(
                status=response.status_code, reason=response.reason_phrase,
                http_version=response.http_version.removeprefix("HTTP/"),
                headers=Headers.from_raw(response.headers.raw), body=body,
            )
            attempt.response_truncated = truncated
            if truncated:
                attempt.error_message = f"response body over {self.max_response_body} bytes; the rest was not read"
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        return attempt

    async def _read_capped(self, response: httpx.Response) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self.max_response_body:
                keep = len(chunk) - (size - self.max_response_body)
                chunks.append(chunk[:keep])
                return b"".join(chunks), True
            chunks.append(chunk)
        return b"".join(chunks), False
