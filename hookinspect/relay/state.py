"""What every part of the relay shares: its settings, the app's keys, the storage's health, and
who a request comes from."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from hookinspect.errors import StoreError
from hookinspect.net.budgets import (
    DEFAULT_MAX_BODIES_IN_FLIGHT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_READ_TIMEOUT,
    BodyBudget,
)
from hookinspect.net.guard import HostRule
from hookinspect.relay.claims import (
    CLAIM_TTL_SECONDS,
    REFRESH_SECONDS,
    ClaimRouter,
)
from hookinspect.relay.hub import BatchingAppender, ChannelHub
from hookinspect.relay.limits import RateLimiter
from hookinspect.relay.log import RelayLog
from hookinspect.relay.metrics import OUTCOME, RelayMetrics
from hookinspect.relay.storage import RelayStorage

PING_SECONDS = 30.0
DEFAULT_MAX_BODY = 25 * 1024 * 1024


@dataclass
class RelaySettings:
    max_body: int = DEFAULT_MAX_BODY
    # A provider may send thousands at once after an outage: the buckets take such a burst in,
    # and memory (bodies in flight, connections) and the per-address limit protect the relay.
    rate_per_second: float = 2000.0  # per channel, sustained
    rate_burst: int = 50_000  # per channel, requests allowed at once
    address_rate_per_second: float = 2000.0  # per sending address, over all channels
    address_burst: int = 50_000
    # Channels one client address may create per minute: creating them is free for a stranger.
    channels_per_minute: int = 10
    # Channels the relay holds in all: each costs a row and a cache entry, whoever made it.
    max_channels: int = 10_000
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_bodies_in_flight: int = DEFAULT_MAX_BODIES_IN_FLIGHT
    read_timeout: float = DEFAULT_READ_TIMEOUT  # seconds a body may take to arrive (408 beyond)
    keep_per_channel: int = 100_000
    max_age_seconds: float = 7 * 86400
    ping_seconds: float = PING_SECONDS
    response_status: int = 200
    # X-Forwarded-Proto/-Host name the public URL only behind a proxy the operator trusts
    # (relay --trust-proxy); otherwise any sender could make /new redirect to a host of theirs.
    trust_proxy: bool = False
    log: RelayLog = field(default_factory=RelayLog)
    # Who may read /metrics: with a token, whoever sends it; without one, everyone when `metrics_open`
    # (a loopback relay), nobody otherwise (a public relay's /metrics answers 404).
    metrics_token: str | None = None
    metrics_open: bool = True
    metrics_per_channel: bool = False  # a label per channel (hashed): as many series as busy channels
    # Seconds a SIGTERM's drain may take: answering what is in flight, ending streams with `restart`.
    drain_seconds: float = 10.0
    # The Host names the relay answers (see http_guard): loopback and the bound address by default.
    hosts: HostRule = field(default_factory=lambda: HostRule.for_bind("127.0.0.1"))
    claims_refresh_seconds: float = REFRESH_SECONDS
    claim_ttl_seconds: float = CLAIM_TTL_SECONDS


STORAGE_DOWN = "the relay cannot reach its storage right now; retry shortly"


class StorageHealth:
    """Says once when the relay's storage fails and once when it works again (not per request)."""

    def __init__(self, log: RelayLog) -> None:
        self.log = log
        self.failing: str | None = None

    def failed(self, exc: StoreError) -> web.Response:
        if self.failing is None:
            self.log.state("storage.failing", f"storing fails: {exc.message}; senders get 503 until it works again")
        self.failing = exc.message
        return refused("storage_failed", web.json_response({"error": STORAGE_DOWN}, status=503,
                                                           headers={"Retry-After": "5"}))

    def worked(self) -> None:
        if self.failing is not None:
            self.failing = None
            self.log.state("storage.recovered", "storing works again", level="info")


def refused(outcome: str, response: web.Response) -> web.Response:
    """`response`, counted in /metrics and the log as `outcome` rather than by its status alone."""
    response[OUTCOME] = outcome
    return response


STORAGE_KEY = web.AppKey("relay_storage", RelayStorage)
SETTINGS_KEY = web.AppKey("relay_settings", RelaySettings)
HUB_KEY = web.AppKey("relay_hub", ChannelHub)
LIMITER_KEY = web.AppKey("relay_limiter", RateLimiter)
CLOSING_KEY = web.AppKey("relay_closing", asyncio.Event)
APPENDER_KEY = web.AppKey("relay_appender", BatchingAppender)
ROUTER_KEY = web.AppKey("relay_claims", ClaimRouter)
HEALTH_KEY = web.AppKey("relay_storage_health", StorageHealth)
CHANNELS_KEY = web.AppKey("relay_channels", dict)
BUDGET_KEY = web.AppKey("relay_body_budget", BodyBudget)
METRICS_KEY = web.AppKey("relay_metrics", RelayMetrics)


def base_url(request: web.Request) -> str:
    if not request.app[SETTINGS_KEY].trust_proxy:
        return f"{request.scheme}://{request.host}"
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}"


def sender_address(request: web.Request) -> str:
    """Who sent it: the peer, or behind a trusted proxy the client it names first."""
    if request.app[SETTINGS_KEY].trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.remote or "?"


def token_of(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query.get("token")


NEEDS_TOKEN = "this channel needs its token (Authorization: Bearer … or ?token=…)"


async def allow(app: web.Application, key: str, rate_per_second: float | None = None, burst: int | None = None) -> bool:
    """Token bucket per key: a channel's deliveries by default, or what `rate_per_second`/`burst` say."""
    settings = app[SETTINGS_KEY]
    rate = settings.rate_per_second if rate_per_second is None else rate_per_second
    burst = settings.rate_burst if burst is None else burst
    return await app[LIMITER_KEY].allow(key, rate, burst)
