"""Delivery, Attempt and the messages they carry: byte-exact, with views that never raise.

A Delivery is a request exactly as it arrived; an Attempt is one send of it afterwards
(forward, replay, check) with what was sent and what came back, or the error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hookinspect import body as bodyview
from hookinspect.values import (
    format_time_us,
    is_absolute_form,
    mask_userinfo,
    new_id,
    now_us,
    parse_time_us,
)

# The kind of every attempt an import brought: where a file says a delivery went is recorded
# and shown, but never chosen as a target by anything that sends (replay, the TUI, the web page).
IMPORTED_KIND = "import"
# The kind of the attempt a record middleware stores with each delivery: the app's own answer,
# where it was recorded (a staging app, say). Like an import's, its URL is shown, never a target.
RECORDED_KIND = "recorded"
FOREIGN_KINDS = (IMPORTED_KIND, RECORDED_KIND)


class Headers:
    """Ordered header pairs with duplicates kept and case-insensitive lookup.

    Names and values are str decoded from the wire as UTF-8 with surrogateescape, so
    `raw()` gives back exactly the bytes that arrived.
    """

    __slots__ = ("_pairs", "_first")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]
        # Lower-cased name -> first value, built on the first lookup: provider detection asks
        # for a dozen names per capture, and the pairs never change after construction.
        self._first: dict[str, str] | None = None

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        headers = cls.__new__(cls)
        headers._pairs = [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in raw]
        headers._first = None
        return headers

    def raw(self) -> list[tuple[bytes, bytes]]:
        return [
            (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
            for k, v in self._pairs
        ]

    def _index(self) -> dict[str, str]:
        if self._first is None:
            self._first = {}
            for k, v in self._pairs:
                self._first.setdefault(k.lower(), v)
        return self._first

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._index().get(name.lower(), default)

    def names(self) -> frozenset[str]:
        """The header names present, lower-cased."""
        return frozenset(self._index())

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self._pairs if k.lower() == lname]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and other._pairs == self._pairs

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"

    def pairs(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def without(self, *names: str) -> Headers:
        drop = {n.lower() for n in names}
        return Headers((k, v) for k, v in self._pairs if k.lower() not in drop)

    def with_set(self, name: str, value: str) -> Headers:
        """Replace every `name` header by one, keeping the position of the first."""
        out: list[tuple[str, str]] = []
        placed = False
        for k, v in self._pairs:
            if k.lower() == name.lower():
                if not placed:
                    out.append((name, value))
                    placed = True
            else:
                out.append((k, v))
        if not placed:
            out.append((name, value))
        return Headers(out)


@dataclass(kw_only=True)
class Message:
    """Headers plus raw body bytes, with the body views every shell needs."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def content_type(self) -> bodyview.ContentType:
        return bodyview.parse_content_type(self.headers.get("content-type"))

    def decoded(self, limit: int = bodyview.DECODED_VIEW_LIMIT) -> bodyview.DecodedBody:
        return bodyview.decode_content(self.body, self.headers.get("content-encoding"), limit)

    def text(self) -> str:
        return bodyview.decode_text(self.decoded().data, self.content_type.charset)

    def json(self) -> Any:
        """The JSON value of the (decoded) body, or body.NOT_JSON."""
        decoded = self.decoded()
        if decoded.truncated or decoded.error:
            return bodyview.NOT_JSON
        return bodyview.parse_json(decoded.data)

    def form(self) -> list[tuple[str, str]] | None:
        if self.content_type.mime != "application/x-www-form-urlencoded":
            return None
        return bodyview.parse_form(self.decoded().data, self.content_type.charset)


# The fields `ls --json` prints for every delivery, in order (a documented interface).
SUMMARY_FIELDS = ("seq", "id", "received_at", "method", "path", "query", "content_type", "size", "remote_addr",
                  "source", "provider", "event_type", "verdict")


def summary_fields(delivery: Any, content_type: str | None) -> dict[str, Any]:
    """The `ls --json` fields of a Delivery or a store listing row (the two share these names)."""
    out = {name: getattr(delivery, name) for name in SUMMARY_FIELDS if name != "content_type"}
    out["content_type"] = content_type
    return {name: out[name] for name in SUMMARY_FIELDS}


# Set on a delivery whose bytes a relay rebuilt (smee sends parsed JSON): no signature over them can be judged.
REENCODED_NOTE = "re-encoded by relay: signature cannot be verified (the relay sent parsed JSON, not the bytes)"


@dataclass(kw_only=True)
class Delivery(Message):
    """One request exactly as it reached hookinspect."""

    method: str
    path: str  # raw, percent-encoding kept, without the query
    query: str = ""  # raw, without the leading "?"
    http_version: str = "1.1"
    remote_addr: str | None = None
    received_us: int = field(default_factory=now_us)
    id: str = field(default_factory=new_id)
    seq: int | None = None  # assigned by the store; what humans type
    source: str = "listen"
    provider: str | None = None
    event_type: str | None = None
    verdict: str | None = None
    verdict_reason: str | None = None
    origin: str | None = None  # for deliveries that came through a relay: `<channel url>#<event id>`
    note: str | None = None  # what a user should know about how it arrived
    # Trailer fields after a chunked body, in order (a signature sent after the body, say).
    trailers: Headers = field(default_factory=Headers)

    @property
    def target(self) -> str:
        """Path plus query, as on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def received_at(self) -> str:
        return format_time_us(self.received_us)

    def original_url(self) -> str:
        """The URL the sender called, as far as the request tells (a proxy or tunnel in front sets
        X-Forwarded-*); a request in absolute form (`POST http://h/x HTTP/1.1`) named it itself."""
        if is_absolute_form(self.path):
            return self.target
        scheme = (self.headers.get("x-forwarded-proto") or "http").split(",")[0].strip()
        host = self.headers.get("x-forwarded-host") or self.headers.get("host") or "localhost"
        return f"{scheme}://{host}{self.target}"

    @property
    def size(self) -> int:
        return len(self.body)

    def content_hash(self) -> str:
        """Identity of the request content (not of when it arrived): used to skip duplicates on import."""
        h = hashlib.sha256()
        for part in (self.method, self.target):
            h.update(part.encode("utf-8", "surrogateescape") + b"\0")
        for k, v in self.headers:
            h.update(k.lower().encode("utf-8", "surrogateescape") + b":" + v.encode("utf-8", "surrogateescape") + b"\0")
        h.update(self.body)
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """The `ls --json` fields of this delivery (without its attempts' outcome)."""
        return summary_fields(self, self.headers.get("content-type"))

    def to_dict(self) -> dict[str, Any]:
        """The `show --json` shape: the summary plus headers in arrival order and the body."""
        out = self.summary()
        out["http_version"] = self.http_version
        out["verdict_reason"] = self.verdict_reason
        out["origin"] = self.origin
        out["note"] = self.note
        out["headers"] = [[k, v] for k, v in self.headers]
        if self.trailers:
            out["trailers"] = [[k, v] for k, v in self.trailers]
        out.update(bodyview.encode_body_fields(self.body))
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Delivery:
        """Inverse of to_dict (seq and id are kept when present)."""
        received = obj.get("received_at")
        received_us = parse_time_us(received) if received else now_us()
        return cls(
            method=obj["method"],
            path=obj["path"],
            query=obj.get("query") or "",
            http_version=obj.get("http_version") or "1.1",
            remote_addr=obj.get("remote_addr"),
            received_us=received_us,
            id=obj.get("id") or new_id(),
            source=obj.get("source") or "import",
            provider=obj.get("provider"),
            event_type=obj.get("event_type"),
            verdict=obj.get("verdict"),
            verdict_reason=obj.get("verdict_reason"),
            headers=Headers((k, v) for k, v in obj.get("headers") or []),
            trailers=Headers((k, v) for k, v in obj.get("trailers") or []),
            body=bodyview.decode_body_fields(obj),
        )


@dataclass(kw_only=True)
class SentRequest(Message):
    """A request exactly as hookinspect sent it to a target."""

    method: str
    url: str


@dataclass(kw_only=True)
class Response(Message):
    status: int
    reason: str = ""
    http_version: str = "1.1"


# Error kinds of an Attempt that got no response; a fixed vocabulary scripts can branch on.
ERROR_KINDS = ("connect", "timeout", "tls", "dns", "reset", "protocol", "too_large", "other")


@dataclass(kw_only=True)
class Attempt:
    """One send of a delivery: what was sent, and the response or the error."""

    delivery_seq: int
    kind: str  # forward | replay | check | queue
    target_url: str
    request: SentRequest
    response: Response | None = None
    response_truncated: bool = False
    latency_ms: float | None = None
    error_kind: str | None = None
    error_message: str | None = None
    started_us: int = field(default_factory=now_us)
    id: str = field(default_factory=new_id)
    number: int | None = None  # 1-based position among the delivery's attempts, set by the store

    @property
    def is_success(self) -> bool:
        return self.response is not None and 200 <= self.response.status < 300

    @property
    def outcome(self) -> str:
        """`200`, `502`, or the error kind."""
        if self.response is not None:
            return str(self.response.status)
        return self.error_kind or "error"

    def to_dict(self, *, shown: bool = False) -> dict[str, Any]:
        """The attempt as JSON; `shown` (for what a command prints) masks passwords in its URLs,
        while exports and stores keep them, since a replay needs them."""
        out: dict[str, Any] = {
            "id": self.id,
            "number": self.number,
            "delivery_seq": self.delivery_seq,
            "kind": self.kind,
            "target_url": mask_userinfo(self.target_url) if shown else self.target_url,
            "started_at": format_time_us(self.started_us),
            "latency_ms": self.latency_ms,
            "error_kind": self.error_kind,
            "error_message": self.error_message,
            "request": {
                "method": self.request.method,
                "url": mask_userinfo(self.request.url) if shown else self.request.url,
                "headers": [[k, v] for k, v in self.request.headers],
                **bodyview.encode_body_fields(self.request.body),
            },
            "response": None,
        }
        if self.response is not None:
            out["response"] = {
                "status": self.response.status,
                "reason": self.response.reason,
                "headers": [[k, v] for k, v in self.response.headers],
                "truncated": self.response_truncated,
                **bodyview.encode_body_fields(self.response.body),
            }
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any], kind: str | None = None) -> Attempt:
        """Inverse of to_dict, under a new id (`kind` when the dict has none); KeyError if a part is missing."""
        req, resp = obj["request"], obj.get("response")
        started = obj.get("started_at")
        return cls(
            delivery_seq=obj.get("delivery_seq") or 0, kind=obj.get("kind") or kind or "import",
            target_url=obj["target_url"],
            request=SentRequest(method=req["method"], url=req["url"], headers=Headers((k, v) for k, v in req["headers"]),
                                body=bodyview.decode_body_fields(req)),
            response=None if resp is None else Response(
                status=resp["status"], reason=resp.get("reason") or "",
                headers=Headers((k, v) for k, v in resp["headers"]), body=bodyview.decode_body_fields(resp)),
            response_truncated=bool(resp and resp.get("truncated")), latency_ms=obj.get("latency_ms"),
            error_kind=obj.get("error_kind"), error_message=obj.get("error_message"),
            started_us=parse_time_us(started) if started else now_us(),
        )


@dataclass
class ExportItem:
    """A delivery with its attempts: what exports write and imports read."""

    delivery: Delivery
    attempts: list[Attempt]
    # Whether the delivery's id came with it (ours: an export), so an import can tell it from another
    # delivery with the same bytes; a browser's HAR has none.
    has_own_id: bool = True


# What a rejection keeps of the request, at most: enough to see what the sender tried.
REJECTED_HEAD_LIMIT = 4096
REJECTED_BODY_LIMIT = 4096


@dataclass
class Rejection:
    """A request that was refused before it could be stored (over a limit, unreadable, cut short)."""

    status: int  # what the sender was answered (0: nothing could be answered)
    reason: str  # one line: why
    remote_addr: str | None = None
    method: str = ""
    target: str = ""  # the request target as sent ("" when the request line itself was unreadable)
    head: bytes = b""  # the request line and headers as read, up to REJECTED_HEAD_LIMIT
    body: bytes = b""  # the start of the body as read, up to REJECTED_BODY_LIMIT
    at_us: int = field(default_factory=now_us)
    # Rejections after this one that were only counted (a flood is not stored row by row).
    unrecorded_after: int = 0
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        head = bodyview.encode_body_fields(self.head)
        body = bodyview.encode_body_fields(self.body)
        return {
            "id": self.id, "at": format_time_us(self.at_us), "remote_addr": self.remote_addr, "status": self.status,
            "reason": self.reason, "method": self.method, "target": self.target,
            **{key.replace("body", "head"): value for key, value in head.items()}, **body,
            "unrecorded_after": self.unrecorded_after,
        }
