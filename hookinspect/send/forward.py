"""Send a delivery to a target exactly as captured and record the Attempt.

One pooled client (httpclient.py: why not httpx is explained there), redirects never
followed, the response stored as it came (raw bytes, no decoding). A send that gets no response is an
Attempt with an error kind, never a made-up status.

URL rule (documented in the README): the delivery's path is appended to a target whose
path is empty or ends with "/" (`http://localhost:3000` + `/stripe/hook`); a target with
any other path is used as is (`http://localhost:3000/webhooks`). The delivery's query
string is appended to the target's own query in both cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hookinspect.errors import SigningError
from hookinspect.formats.targets import HOP_BY_HOP, target_url
from hookinspect.model import Attempt, Delivery, Headers, Response, SentRequest
from hookinspect.net.client import HTTPClient, HTTPClientError

RECOMPUTED = frozenset({"host", "content-length"})
# Responses are stored in full up to this size; beyond it the rest is not read and the
# attempt is marked truncated (a 20 MiB answer is still kept whole).
MAX_RESPONSE_BODY = 32 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0


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

    @classmethod
    def replacing(cls, original: Headers, headers: list[tuple[str, str]], body: bytes | None) -> RequestEdits:
        """Edits that send exactly `headers` (those of `original` left out are dropped) and `body`
        (None: the stored one): what an edit-and-replay form gives, in the TUI and the web page."""
        kept = {name.lower() for name, _ in headers}
        return cls(set_headers=headers, body=body, drop_headers=[k for k, _ in original if k.lower() not in kept])


# A re-signer (signing/) gets the request about to be sent and returns it signed afresh (its
# headers, and for providers that sign inside the body, those fields of the body).
Resigner = Callable[[SentRequest], SentRequest]


def build_request(delivery: Delivery, target: str, edits: RequestEdits | None = None,
                  forwarded: bool = True) -> SentRequest:
    """The request to send: captured headers in order, hop-by-hop dropped, edits applied."""
    edits = edits or RequestEdits()
    url = target_url(target, delivery.path, delivery.query)
    body = edits.body if edits.body is not None else delivery.body
    dropped = HOP_BY_HOP.union(name.lower() for name in edits.drop_headers)
    pairs = [pair for pair in delivery.headers if pair[0].lower() not in dropped]
    present = {name.lower() for name, _ in pairs}
    # Each change replaces every header of its name by one, at the place of the first, or is
    # added at the end; they are collected here and applied in one pass over the pairs.
    changes: dict[str, tuple[str, str]] = {}
    for name, value in edits.set_headers:
        changes[name.lower()] = (name, value)

    def has(name: str) -> bool:
        return name in present or name in changes

    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    host_first = not has("host")  # a request without Host gets it first, where clients put it
    if not host_first:
        changes["host"] = ("Host", netloc)
    if body or delivery.method not in ("GET", "HEAD", "OPTIONS", "DELETE") or has("content-length"):
        changes["content-length"] = ("Content-Length", str(len(body)))
    if forwarded:
        original_host = delivery.headers.get("host")
        if delivery.remote_addr:
            prior = delivery.headers.get("x-forwarded-for")
            changes["x-forwarded-for"] = ("X-Forwarded-For", f"{prior}, {delivery.remote_addr}" if prior else delivery.remote_addr)
        if original_host and not has("x-forwarded-host"):
            changes["x-forwarded-host"] = ("X-Forwarded-Host", original_host)
        if not has("x-forwarded-proto"):
            changes["x-forwarded-proto"] = ("X-Forwarded-Proto", "http")
    out = [("Host", netloc)] if host_first else []
    placed: set[str] = set()
    for name, value in pairs:
        lower = name.lower()
        change = changes.get(lower)
        if change is None:
            out.append((name, value))
        elif lower not in placed:
            out.append(change)
            placed.add(lower)
    out += [change for lower, change in changes.items() if lower not in present]
    return SentRequest(method=edits.method or delivery.method, url=url, headers=Headers(out), body=body)


class Forwarder:
    """Sends deliveries with one pooled client; every send becomes an Attempt."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_response_body: int = MAX_RESPONSE_BODY,
                 verify_tls: bool = True) -> None:
        self.max_response_body = max_response_body
        self._client = HTTPClient(timeout=timeout, verify_tls=verify_tls)

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
            try:
                request = resign(request)
            except SigningError as exc:  # not sent: a stale or wrong signature would only be refused
                return Attempt(delivery_seq=delivery.seq or 0, kind=kind, target_url=target, request=request,
                               error_kind="other", error_message=exc.message)
        return await self.send_request(delivery.seq or 0, request, target=target, kind=kind)

    async def send_request(self, delivery_seq: int, request: SentRequest, *, target: str, kind: str) -> Attempt:
        attempt = Attempt(delivery_seq=delivery_seq, kind=kind, target_url=target, request=request)
        started = time.perf_counter()
        try:
            response = await self._client.request(request.method, request.url, request.headers.raw(), request.body,
                                                  self.max_response_body)
        except HTTPClientError as exc:
            attempt.error_kind, attempt.error_message = exc.kind, str(exc)
        else:
            attempt.response = Response(
                status=response.status, reason=response.reason, http_version=response.http_version,
                headers=Headers.from_raw(response.headers), body=response.body,
            )
            attempt.response_truncated = response.truncated
            if response.truncated:
                attempt.error_message = f"response body over {self.max_response_body} bytes; the rest was not read"
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        return attempt
