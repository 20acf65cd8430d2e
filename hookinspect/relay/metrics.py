"""What the relay counts, in Prometheus' text format on `/metrics`.

Label sets are bounded: outcomes and operations are fixed words, and channels appear as labels
only when the operator asks (`per_channel`), as a short hash, never as the id a sender posts
to. Counting is always on (a few hundred nanoseconds a request); who may read it is the
settings' `metrics_token`: a relay bound to loopback shows it to anyone who can reach it, a
public one only with the token (and answers 404 without one configured), since traffic
figures tell a stranger whose channels are busy and when.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

# What a request to a channel came to; a response may name its own (`response[OUTCOME]`).
OUTCOME = "hookinspect_outcome"
OUTCOMES_BY_STATUS = {200: "accepted", 404: "no_such_channel", 408: "body_timeout", 413: "too_large",
                      429: "rate_limited", 431: "headers_too_large", 503: "unavailable"}
OUTCOMES = (*OUTCOMES_BY_STATUS.values(), "rate_limited_address", "busy", "storage_failed", "other")
# Events a subscriber is behind are counted up to this (a count is a scan of the storage).
BACKLOG_COUNT_CAP = 10_000
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def channel_hash(channel_id: str) -> str:
    """A channel as logs and labels show it: anyone with the id can post to it, so not the id."""
    return hashlib.sha256(channel_id.encode()).hexdigest()[:12]


def outcome_of(status: int, named: str | None) -> str:
    return named or OUTCOMES_BY_STATUS.get(status, "other")


@dataclass(eq=False)  # each stream is itself, even at the same channel and cursor
class StreamState:
    """One connected subscriber's stream, as the metrics see it."""

    channel: str
    cursor: int  # the id of the last event sent to it


class RelayMetrics:
    def __init__(self, per_channel: bool = False) -> None:
        disable_created_metrics()  # `*_created` series: a timestamp per counter nobody graphs
        self.per_channel = per_channel
        self.registry = CollectorRegistry(auto_describe=True)
        prefix = "hookinspect_relay_"
        self.requests = Counter(prefix + "requests", "Requests posted to channels, by outcome",
                                ["outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self.requests.labels(outcome)
        self.request_seconds = Histogram(prefix + "request_seconds", "Time from a sender's request to its answer",
                                         buckets=LATENCY_BUCKETS, registry=self.registry)
        self.delivered = Counter(prefix + "events_delivered", "Events written to subscribers' streams",
                                 registry=self.registry)
        self.subscribers = Gauge(prefix + "subscribers", "Subscribers connected to this instance",
                                 registry=self.registry)
        self.backlog = Gauge(prefix + "backlog_events",
                             f"Stored events connected subscribers have yet to receive (each counted up to "
                             f"{BACKLOG_COUNT_CAP})", ["channel"] if per_channel else [], registry=self.registry)
        self.behind = Gauge(prefix + "subscribers_behind", "Connected subscribers with events yet to receive",
                            registry=self.registry)
        self.storage_seconds = Histogram(prefix + "storage_seconds", "Storage calls, by operation",
                                         ["operation"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.redis_round_trips = Counter(prefix + "redis_round_trips", "Round trips to Redis, by operation",
                                         ["operation"], registry=self.registry)
        self.streams: set[StreamState] = set()

    # -- what the relay calls --------------------------------------------------------------

    def answered(self, outcome: str, started: float) -> None:
        self.requests.labels(outcome).inc()
        self.request_seconds.observe(time.monotonic() - started)

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.storage_seconds.labels(operation).observe(time.monotonic() - started)

    def round_trip(self, operation: str) -> None:
        self.redis_round_trips.labels(operation).inc()

    @contextmanager
    def stream(self, channel: str, cursor: int) -> Iterator[StreamState]:
        state = StreamState(channel, cursor)
        self.streams.add(state)
        self.subscribers.inc()
        try:
            yield state
        finally:
            self.streams.discard(state)
            self.subscribers.dec()

    # -- what a scrape reads ---------------------------------------------------------------

    async def exposition(self, accept: str, count_after: Callable[[str, int, int], int]) -> tuple[bytes, str]:
        """The metrics as the scraper asked for them (text 0.0.4 or OpenMetrics); backlogs are
        counted now, in a thread (each a bounded scan of the storage)."""
        streams = [(state.channel, state.cursor) for state in self.streams]
        counts = await asyncio.to_thread(lambda: [count_after(channel, cursor, BACKLOG_COUNT_CAP)
                                                  for channel, cursor in streams])
        self.behind.set(sum(1 for count in counts if count))
        if self.per_channel:  # a channel is as far behind as its slowest subscriber
            slowest: dict[str, int] = {}
            for (channel, _), count in zip(streams, counts, strict=True):
                slowest[channel] = max(count, slowest.get(channel, 0))
            self.backlog.clear()
            for channel, count in slowest.items():
                self.backlog.labels(channel_hash(channel)).set(count)
        else:
            self.backlog.set(sum(counts))
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


def token_matches(given: str | None, wanted: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), wanted.encode())
