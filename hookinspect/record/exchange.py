"""One request an app answered, as a record middleware saw it, and the delivery it becomes.

The middleware only keeps references to what passed by (header pairs, body chunks); building
the delivery, detecting its provider and redacting it happen in the writer thread, so the
request that is being answered pays for none of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hookinspect.model import RECORDED_KIND, Attempt, Delivery, Headers, Response, SentRequest
from hookinspect.values import now_us

# A note on a delivery the app did not read to its end: what was recorded is what it read.
PARTIAL_BODY_NOTE = "recorded inside the app, which read {read} of {declared} body bytes: the rest was not seen"
CUT_BODY_NOTE = "recorded inside the app; the body was longer than the recorder's max_body ({limit} bytes) and is cut"


@dataclass
class Kept:
    """Bytes that passed by, kept up to a limit (the rest passes on, unkept)."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    cut: bool = False  # more passed than the limit

    def add(self, chunk: bytes, limit: int) -> None:
        if self.size + len(chunk) > limit:
            chunk = chunk[:max(0, limit - self.size)]
            self.cut = True
        if chunk:
            self.chunks.append(chunk)
            self.size += len(chunk)

    def joined(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class Exchange:
    method: str
    path: str  # as on the request line, percent-encoding kept, without the query
    query: str
    url: str  # the app's URL for this request: where the recorded answer came from
    headers: list[tuple[bytes, bytes]]
    http_version: str = "1.1"
    remote: str | None = None
    started_us: int = field(default_factory=now_us)
    # The body as the app read it: longer than max_body, the rest went to the app, not the recording.
    request_body: Kept = field(default_factory=Kept)
    status: int | None = None
    reason: str = ""
    answer_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    answer: Kept = field(default_factory=Kept)
    error: str | None = None  # the app raised instead of answering
    latency_ms: float | None = None

    @property
    def body(self) -> bytes:
        return self.request_body.joined()

    def wire(self) -> tuple:
        """Plain values for the pipe to the writer process (pickled far faster than the dataclasses)."""
        return (self.method, self.path, self.query, self.url, self.headers, self.http_version, self.remote,
                self.started_us, self.body, self.request_body.cut, self.status, self.reason, self.answer_headers,
                self.answer.joined(), self.answer.cut, self.error, self.latency_ms)

    @classmethod
    def from_wire(cls, values: tuple) -> Exchange:
        (method, path, query, url, headers, http_version, remote, started_us, body, body_cut, status, reason,
         answer_headers, answer, answer_cut, error, latency_ms) = values
        return cls(method=method, path=path, query=query, url=url, headers=headers, http_version=http_version,
                   remote=remote, started_us=started_us, request_body=Kept([body], len(body), body_cut), status=status,
                   reason=reason, answer_headers=answer_headers, answer=Kept([answer], len(answer), answer_cut),
                   error=error, latency_ms=latency_ms)

    def declared_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def delivery(self) -> Delivery:
        delivery = Delivery(method=self.method, path=self.path, query=self.query, http_version=self.http_version,
                            remote_addr=self.remote, received_us=self.started_us, source="record",
                            headers=Headers.from_raw(self.headers), body=self.body)
        declared = self.declared_length()
        if self.request_body.cut:
            delivery.note = CUT_BODY_NOTE.format(limit=self.request_body.size)
        elif declared is not None and declared > self.request_body.size:
            delivery.note = PARTIAL_BODY_NOTE.format(read=self.request_body.size, declared=declared)
        return delivery

    def attempt(self, delivery: Delivery) -> Attempt:
        """The app's own answer, as one attempt of kind `recorded`. Its request is the delivery
        itself, so it is not stored twice: the attempt keeps only its method and URL."""
        response = None
        if self.status is not None:
            response = Response(status=self.status, reason=self.reason, headers=Headers.from_raw(self.answer_headers),
                                body=self.answer.joined())
        return Attempt(delivery_seq=0, kind=RECORDED_KIND, target_url=self.url,
                       request=SentRequest(method=delivery.method, url=self.url),
                       response=response, response_truncated=self.answer.cut, latency_ms=self.latency_ms,
                       error_kind=None if response is not None else "other",
                       error_message=None if response is not None else (self.error or "the app did not answer"),
                       started_us=self.started_us)
