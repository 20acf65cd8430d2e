"""The relay server: public senders post to a channel; subscribers stream it as Server-Sent Events.

It speaks smee.io's protocol (HEAD|GET /new, SSE on GET /<channel>, the flat JSON `data:`),
so smee-client works against it, and adds what smee lacks: every delivery is stored, a
subscriber that reconnects with `Last-Event-ID` gets everything it missed, private channels
need a token, and subscribers that ask (`?raw=1`) get the exact bytes, so signatures verify
(`&smee=0` leaves smee's flat shape out for those that read only the exact bytes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from urllib.parse import parse_qsl

from aiohttp import web

from hookinspect.body import NOT_JSON, parse_content_type, parse_json
from hookinspect.errors import StoreError, UsageError
from hookinspect.model import MAX_NUMBER, now_us, parse_number
from hookinspect.net.budgets import (
    DEFAULT_MAX_BODIES_IN_FLIGHT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_READ_TIMEOUT,
    RETRY_AFTER_BUSY,
    BodyBudget,
    BodyTooLarge,
    OverBudget,
    header_bytes,
    read_body,
)
from hookinspect.net.guard import HostRule, host_guard
from hookinspect.net.server import continue_unless
from hookinspect.relay.claims import (
    CLAIM_TTL_SECONDS,
    REFRESH_SECONDS,
    RENEW_SECONDS,
    ClaimRouter,
    Subscription,
    parse_claim,
)
from hookinspect.relay.limits import RateLimiter
from hookinspect.relay.sealing import checked_public_key, seal
from hookinspect.relay.storage import Channel, ChannelLimitReached, RelayEvent, RelayStorage

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
    on_state: Callable[[str], None] = field(default=lambda _message: None)  # a shared store's notifications
    # The Host names the relay answers (see http_guard): loopback and the bound address by default.
    hosts: HostRule = field(default_factory=lambda: HostRule.for_bind("127.0.0.1"))
    claims_refresh_seconds: float = REFRESH_SECONDS
    claim_ttl_seconds: float = CLAIM_TTL_SECONDS


class BatchingAppender:
    """Group commit for the relay: concurrent ingests share one transaction, and each sender is
    answered only after its delivery is committed.

    A delivery that arrives in a quiet moment (nothing else being stored, no commit just
    before) is committed on the event loop at once: at a steady rate, a hop to a thread and
    back costs more than the commit and was most of the relay's part of a delivery's latency.
    Deliveries that come close together go to the thread, where they share one transaction
    (and one fsync). A commit on the loop that turns out slow (a struggling disk) sends the
    following ones to the thread for a while.
    """

    MAX_BATCH = 512
    INLINE_MAX_BYTES = 256 * 1024
    QUIET_SECONDS = 0.002
    SLOW_INLINE_SECONDS = 0.005
    THREAD_ONLY_SECONDS = 10.0

    def __init__(self, storage: RelayStorage, hub: ChannelHub) -> None:
        self.storage = storage
        self.hub = hub
        self._pending: list[tuple[RelayEvent, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_thread = False  # a batch is being committed in a thread: later ones wait their turn
        self._inline_after = 0.0  # monotonic time: commits before it go to the thread
        self._unchecked_bytes = 0
        self._checkpointing: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in (self._task, self._checkpointing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def append(self, event: RelayEvent) -> int:
        event_id = self._commit_now(event)  # StoreError goes to the sender as a 503
        if event_id is not None:  # subscribers have it; its sender is answered once it is on disk
            if self.storage.syncs_after_append_now:
                await asyncio.to_thread(self.storage.sync)
            else:
                await asyncio.sleep(0)  # the subscribers' streams go out before this sender's answer
            return event_id
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        self._wake.set()
        return await future

    def _commit_now(self, event: RelayEvent) -> int | None:
        """Commit `event` on the loop if this is a quiet moment and the store can; its id, or None."""
        started = time.monotonic()
        if self._pending or self._in_thread or event.size > self.INLINE_MAX_BYTES or started < self._inline_after:
            return None
        ids = self.storage.append_now([event])
        if ids is None:
            return None
        took = time.monotonic() - started
        self._inline_after = time.monotonic() + (self.THREAD_ONLY_SECONDS if took > self.SLOW_INLINE_SECONDS
                                                 else self.QUIET_SECONDS)
        self._committed([event], ids)
        return ids[0]

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH:]
                self._in_thread = True
                try:
                    ids = await asyncio.to_thread(self.storage.append_many, [event for event, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every sender of the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                finally:
                    self._in_thread = False
                    self._inline_after = max(self._inline_after, time.monotonic() + self.QUIET_SECONDS)
                self._committed([event for event, _ in batch], ids)
                for (_, future), event_id in zip(batch, ids, strict=True):
                    if not future.done():
                        future.set_result(event_id)

    def _committed(self, events: list[RelayEvent], ids: list[int]) -> None:
        """Hand just-committed events to their channels' subscribers, in id order. Subscribers
        first: their streams then go out in the same turn of the loop as the senders' answers."""
        committed: dict[str, list[RelayEvent]] = {}
        for event, event_id in zip(events, ids, strict=True):
            committed.setdefault(event.channel, []).append(replace(event, id=event_id))
        for channel, channel_events in committed.items():
            self.hub.publish(channel, channel_events)
        every = self.storage.checkpoint_every
        if every is None:
            return
        self._unchecked_bytes += sum(event.size for event in events)
        if self._unchecked_bytes >= every and self._checkpointing is None:
            self._unchecked_bytes = 0
            self._checkpointing = asyncio.create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            await asyncio.to_thread(self.storage.checkpoint)
        except StoreError:
            pass  # the log keeps growing until a later one works; commits say why the disk fails
        finally:
            self._checkpointing = None


class _Recent:
    """The newest committed events of one channel, oldest first, and the bytes they hold."""

    def __init__(self) -> None:
        self.events: deque[RelayEvent] = deque()
        self.size = 0


class ChannelHub:
    """Wakes the subscribers of a channel when something new is stored, and keeps the newest
    events of recently active channels in memory, so that live subscribers need not read
    them back. Memory is bounded by events and bytes per channel and by channel count."""

    RECENT_PER_CHANNEL = 1024
    RECENT_BYTES_PER_CHANNEL = 1024 * 1024
    RECENT_CHANNELS = 64

    def __init__(self, remember: bool = True) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._recent: OrderedDict[str, _Recent] = OrderedDict()  # least recently published first
        self._remember = remember  # False when other processes append to the same store

    def publish(self, channel: str, events: list[RelayEvent]) -> None:
        """Events just committed, in id order."""
        if self._remember:
            recent = self._recent.pop(channel, None) or _Recent()
            self._recent[channel] = recent
            recent.events.extend(events)
            recent.size += sum(event.size for event in events)
            while recent.events and (len(recent.events) > self.RECENT_PER_CHANNEL
                                     or recent.size > self.RECENT_BYTES_PER_CHANNEL):
                recent.size -= recent.events.popleft().size
            while len(self._recent) > self.RECENT_CHANNELS:
                self._recent.popitem(last=False)
        self.notify(channel)

    def recent_after(self, channel: str, after_id: int, limit: int) -> list[RelayEvent] | None:
        """The events after `after_id` from memory, or None when memory may not hold all of them.

        Everything this process committed to a channel since its oldest kept event is kept,
        so memory is complete for a subscriber that already has that oldest event.
        """
        recent = self._recent.get(channel)
        if recent is None or not recent.events or after_id < recent.events[0].id:
            return None
        newer: list[RelayEvent] = []
        for event in reversed(recent.events):
            if event.id <= after_id:
                break
            newer.append(event)
        newer.reverse()
        return newer[:limit]

    def notify(self, channel: str) -> None:
        event = self._events.pop(channel, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        for channel in list(self._events):
            self.notify(channel)

    def waiter(self, channel: str) -> asyncio.Event:
        """Take this before reading the store, so nothing stored after the read is missed."""
        return self._events.setdefault(channel, asyncio.Event())


STORAGE_DOWN = "the relay cannot reach its storage right now; retry shortly"


class StorageHealth:
    """Says once when the relay's storage fails and once when it works again (not per request)."""

    def __init__(self, on_state: Callable[[str], None]) -> None:
        self.on_state = on_state
        self.failing: str | None = None

    def failed(self, exc: StoreError) -> web.Response:
        if self.failing is None:
            self.on_state(f"storing fails: {exc.message}; senders get 503 until it works again")
        self.failing = exc.message
        return web.json_response({"error": STORAGE_DOWN}, status=503, headers={"Retry-After": "5"})

    def worked(self) -> None:
        if self.failing is not None:
            self.failing = None
            self.on_state("storing works again")


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


def create_relay_app(storage: RelayStorage, settings: RelaySettings | None = None) -> web.Application:
    settings = settings or RelaySettings()
    # Senders post from servers and subscribers stream from anywhere; only the API (channels,
    # claims) is refused to pages of other sites.
    sites = host_guard(settings.hosts, guarded=lambda request: request.path.startswith("/api/"))
    app = web.Application(client_max_size=0, middlewares=[sites])
    app[STORAGE_KEY] = storage
    app[SETTINGS_KEY] = settings
    app[HUB_KEY] = ChannelHub(remember=not storage.shared)
    app[LIMITER_KEY] = storage.rate_limiter()
    app[CLOSING_KEY] = asyncio.Event()
    app[CHANNELS_KEY] = {}
    app[BUDGET_KEY] = BodyBudget()
    app[APPENDER_KEY] = BatchingAppender(storage, app[HUB_KEY])
    app[ROUTER_KEY] = ClaimRouter(storage, app[SETTINGS_KEY].claims_refresh_seconds,
                                  app[SETTINGS_KEY].claim_ttl_seconds)
    app[HEALTH_KEY] = StorageHealth(app[SETTINGS_KEY].on_state)
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.append(_retention)
    app.cleanup_ctx.append(_appender)
    app.cleanup_ctx.append(_shared_store)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("GET", "/new", new_channel_redirect)
    app.router.add_route("HEAD", "/new", new_channel_redirect)
    app.router.add_post("/api/channels", create_channel)
    app.router.add_get("/api/channels/{channel}/claims", list_claims)
    app.router.add_delete("/api/channels/{channel}/claims/{subscriber}", release_claim)
    app.router.add_get("/_static/{name}", channel_page_file)
    expect = continue_unless(refuse_declared_body)
    app.router.add_route("*", "/{channel}", channel_endpoint, expect_handler=expect)
    app.router.add_route("*", "/{channel}/{tail:.*}", channel_endpoint, expect_handler=expect)
    return app


async def _appender(app: web.Application) -> AsyncIterator[None]:
    app[APPENDER_KEY].start()
    yield
    await app[APPENDER_KEY].stop()


async def _shared_store(app: web.Application) -> AsyncIterator[None]:
    """With a shared store, what other instances store wakes this one's subscribers."""
    hub = app[HUB_KEY]
    task = asyncio.create_task(app[STORAGE_KEY].watch(hub.notify, hub.notify_all, app[SETTINGS_KEY].on_state))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await app[LIMITER_KEY].aclose()


async def _end_streams(app: web.Application) -> None:
    """Open SSE streams would hold a shutdown for its whole timeout: end them (clients reconnect)."""
    app[CLOSING_KEY].set()
    app[HUB_KEY].notify_all()


def retention_limits(settings: RelaySettings) -> tuple[int, float]:
    """(events kept per channel, seconds kept) as the storage can count them: --keep and
    --max-age-days beyond that mean "keep everything" (as given, they overflowed SQLite's
    INTEGER, and pruning ended for good, silently)."""
    return min(settings.keep_per_channel, MAX_NUMBER), min(settings.max_age_seconds, 1e11)  # 3,000 years


async def _retention(app: web.Application) -> AsyncIterator[None]:
    async def prune_forever() -> None:
        settings = app[SETTINGS_KEY]
        keep, max_age_seconds = retention_limits(settings)
        said = False
        while True:
            await asyncio.sleep(60)
            try:
                await asyncio.to_thread(app[STORAGE_KEY].prune, keep, max_age_seconds)
            except StoreError:
                continue  # ingest says so; pruning waits for the next minute
            except Exception as exc:  # noqa: BLE001 - a flaw must not end pruning for good (the disk would fill)
                if not said:
                    settings.on_state(f"pruning old deliveries failed ({type(exc).__name__}: {exc}); trying every minute")
                said = True
            else:
                said = False

    task = asyncio.create_task(prune_forever())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def body_too_large(settings: RelaySettings) -> web.Response:
    return web.json_response({"error": f"body over the relay's limit of {settings.max_body} bytes"},
                             status=413, headers={"Connection": "close"})


def refuse_declared_body(request: web.Request) -> web.Response | None:
    """A body announced over the limit is refused before `100 Continue` invites it."""
    settings = request.app[SETTINGS_KEY]
    if request.content_length is not None and request.content_length > settings.max_body:
        return body_too_large(settings)
    return None


def _base_url(request: web.Request) -> str:
    if not request.app[SETTINGS_KEY].trust_proxy:
        return f"{request.scheme}://{request.host}"
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}"


def _sender_address(request: web.Request) -> str:
    """Who sent it: the peer, or behind a trusted proxy the client it names first."""
    if request.app[SETTINGS_KEY].trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.remote or "?"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _may_create_channel(request: web.Request) -> bool:
    per_minute = request.app[SETTINGS_KEY].channels_per_minute
    return await _allow(request.app, f"new-channel {request.remote}", per_minute / 60, per_minute)


TOO_MANY_CHANNELS = "too many channels created from this address; wait a minute"


async def _new_channel(request: web.Request, is_public: bool,
                       seal_key: str | None = None) -> tuple[Channel, str | None] | web.Response:
    """A new channel and its token, or the answer that says why there is none."""
    if not await _may_create_channel(request):
        return web.json_response({"error": TOO_MANY_CHANNELS}, status=429, headers={"Retry-After": "60"})
    limit = request.app[SETTINGS_KEY].max_channels
    try:
        return await asyncio.to_thread(request.app[STORAGE_KEY].create_channel, is_public, limit, seal_key)
    except StoreError as exc:
        return request.app[HEALTH_KEY].failed(exc)
    except ChannelLimitReached:
        return web.json_response({"error": f"this relay holds its limit of {limit} channels; "
                                           "its operator can raise it (relay --max-channels)"}, status=503)


async def new_channel_redirect(request: web.Request) -> web.Response:
    """smee's way: a public channel, and a 307 to its URL."""
    created = await _new_channel(request, True)
    if isinstance(created, web.Response):
        return created
    raise web.HTTPTemporaryRedirect(f"{_base_url(request)}/{created[0].id}")


async def create_channel(request: web.Request) -> web.Response:
    """A private channel (subscribing needs its token) unless {"public": true} is posted; with
    {"seal_key": "<X25519 public key, base64>"} a sealed one (events stored encrypted to it)."""
    try:
        options = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        return web.json_response({"error": "body must be JSON, e.g. {\"public\": false}"}, status=400)
    if not isinstance(options, dict) or not isinstance(options.get("public", False), bool):
        return web.json_response({"error": 'post {"public": true} or {"public": false} (a JSON boolean)'}, status=400)
    is_public = options.get("public", False)
    seal_key = options.get("seal_key")
    if seal_key is not None:
        try:
            seal_key = checked_public_key(seal_key)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    created = await _new_channel(request, is_public, seal_key)
    if isinstance(created, web.Response):
        return created
    channel, token = created
    return web.json_response({"id": channel.id, "url": f"{_base_url(request)}/{channel.id}", "token": token,
                              "public": is_public, "sealed": seal_key is not None}, status=201)


NEEDS_TOKEN = "this channel needs its token (Authorization: Bearer … or ?token=…)"


async def _named_channel(request: web.Request) -> Channel | web.Response:
    """The channel the path names, or the answer that says why there is none."""
    channel_id = request.match_info["channel"]
    cache = request.app[CHANNELS_KEY]
    channel = cache.get(channel_id)
    if channel is None:
        try:
            channel = await asyncio.to_thread(request.app[STORAGE_KEY].channel, channel_id)
        except StoreError as exc:
            return request.app[HEALTH_KEY].failed(exc)
        if channel is None:
            return web.json_response({"error": f"no channel {channel_id!r}; create one with GET /new or "
                                               "POST /api/channels"}, status=404)
        cache[channel_id] = channel  # channels never change once created
    return channel


async def _channel_for_owner(request: web.Request) -> Channel | web.Response:
    """The channel named in the path, if the request carries its token (a public one needs none)."""
    channel = await _named_channel(request)
    if isinstance(channel, web.Response) or channel.accepts_token(_token(request)):
        return channel
    return web.json_response({"error": NEEDS_TOKEN}, status=401)


async def list_claims(request: web.Request) -> web.Response:
    """Who claims what on a channel, and when each was last connected."""
    channel = await _channel_for_owner(request)
    if isinstance(channel, web.Response):
        return channel
    try:
        claims = await asyncio.to_thread(request.app[STORAGE_KEY].claims, channel.id)
    except StoreError as exc:
        return request.app[HEALTH_KEY].failed(exc)
    ttl = request.app[SETTINGS_KEY].claim_ttl_seconds
    return web.json_response({"claims": [
        {"subscriber": c.subscriber, "claim": c.filter or None, "default": c.is_default, "seen_at": c.seen_at,
         "expired": c.seen_at < time.time() - ttl} for c in claims]})


async def release_claim(request: web.Request) -> web.Response:
    """End one subscriber's claim: what it claimed goes to the others (or the default) at once."""
    channel = await _channel_for_owner(request)
    if isinstance(channel, web.Response):
        return channel
    subscriber = request.match_info["subscriber"]
    try:
        released = await asyncio.to_thread(request.app[ROUTER_KEY].release, channel.id, subscriber)
    except StoreError as exc:
        return request.app[HEALTH_KEY].failed(exc)
    if not released:
        return web.json_response({"error": f"{subscriber!r} claims nothing on this channel"}, status=404)
    return web.json_response({"released": subscriber})


def _token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query.get("token")


async def channel_endpoint(request: web.Request) -> web.StreamResponse:
    channel = await _named_channel(request)
    if isinstance(channel, web.Response):
        return channel
    if request.method == "GET" and "text/event-stream" in request.headers.get("Accept", ""):
        return await subscribe(request, channel)
    if request.method == "GET" and not request.match_info.get("tail") and "text/html" in request.headers.get("Accept", ""):
        # A browser: the channel's page (its events, live, as smee.io shows them); the page
        # itself holds nothing of the channel, and the events need the token as a stream does.
        return web.Response(body=page_file("channel.html"), content_type="text/html", headers=PAGE_HEADERS)
    return await ingest(request, channel)


# The channel page's files, shared with the web inspector, under the same strict policy.
PAGE_FILES = {"channel.js": "text/javascript", "app.css": "text/css"}
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def page_file(name: str) -> bytes:
    return resources.files("hookinspect.web").joinpath("static", name).read_bytes()


async def channel_page_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in PAGE_FILES:
        raise web.HTTPNotFound()
    return web.Response(body=page_file(name), content_type=PAGE_FILES[name], charset="utf-8", headers=PAGE_HEADERS)


async def _allow(app: web.Application, key: str, rate_per_second: float | None = None, burst: int | None = None) -> bool:
    """Token bucket per key: a channel's deliveries by default, or what `rate_per_second`/`burst` say."""
    settings = app[SETTINGS_KEY]
    rate = settings.rate_per_second if rate_per_second is None else rate_per_second
    burst = settings.rate_burst if burst is None else burst
    return await app[LIMITER_KEY].allow(key, rate, burst)


async def ingest(request: web.Request, channel: Channel) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if not await _allow(request.app, channel.id):
        return web.json_response({"error": "rate limit for this channel exceeded"}, status=429,
                                 headers={"Retry-After": "1"})
    if not await _allow(request.app, f"address {_sender_address(request)}", settings.address_rate_per_second,
                        settings.address_burst):
        return web.json_response({"error": "rate limit for your address exceeded"}, status=429,
                                 headers={"Retry-After": "1"})
    if header_bytes(request) > settings.max_header_bytes:
        return web.json_response({"error": f"request headers over the relay's limit of {settings.max_header_bytes} bytes"},
                                 status=431, headers={"Connection": "close"})
    with request.app[BUDGET_KEY].hold(settings.max_bodies_in_flight) as hold:  # held until stored
        try:
            async with asyncio.timeout(settings.read_timeout):
                body = await read_body(request, settings.max_body, hold)
        except TimeoutError:
            return web.json_response({"error": f"the body did not arrive within {settings.read_timeout:g} s"},
                                     status=408, headers={"Connection": "close"})
        except BodyTooLarge:
            return body_too_large(settings)
        except OverBudget:
            return web.json_response({"error": "the relay is busy receiving other bodies; retry shortly"}, status=503,
                                     headers={"Retry-After": str(RETRY_AFTER_BUSY), "Connection": "close"})
        raw_path = request.raw_path
        path, _, query = raw_path.partition("?")
        tail = path[len(channel.id) + 1:] or "/"
        event = RelayEvent(0, channel.id, now_us(), request.method, tail, query,
                           [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                            for k, v in request.raw_headers], body)
        if channel.seal_key is not None:  # from here on only ciphertext exists of it
            event = sealed_event(event, channel.seal_key)
        # The sender is acknowledged only once the delivery is durable in the relay's store.
        try:
            await request.app[APPENDER_KEY].append(event)
        except StoreError as exc:
            return request.app[HEALTH_KEY].failed(exc)
    request.app[HEALTH_KEY].worked()
    return web.Response(status=settings.response_status)


def _subscription(request: web.Request, channel: Channel) -> Subscription | web.Response:
    """Who subscribes and what it claims (`?subscriber=ana&claim=provider:stripe`, or `&default=1`)."""
    name = request.query.get("subscriber")
    claim_text = request.query.get("claim")
    is_default = request.query.get("default") in ("1", "true")
    if claim_text is None and not is_default:
        return Subscription()
    if not name or len(name) > 100 or not name.isprintable():
        return web.json_response({"error": "a claim needs a subscriber name (?subscriber=…, printable, at most 100 "
                                           "characters)"}, status=400)
    if channel.seal_key is not None:
        return web.json_response({"error": "a sealed channel cannot route by claims: the relay cannot read its "
                                           "events"}, status=400)
    try:
        claim = parse_claim(claim_text) if claim_text is not None else None
    except UsageError as exc:
        return web.json_response({"error": f"claim: {exc}"}, status=400)
    return Subscription(name, claim, is_default)


def sealed_event(event: RelayEvent, public_key: str) -> RelayEvent:
    """The event encrypted to its channel's key: method, path, query, headers and body inside."""
    plaintext = json.dumps(_raw_fields(event, None), separators=(",", ":")).encode()
    return RelayEvent(0, event.channel, event.received_us, "", "", "", [], seal(public_key, plaintext), sealed=True)


def smee_payload(event: RelayEvent, include_raw: bool, remote: str | None = None, include_smee: bool = True) -> dict:
    """smee's flat shape (lower-cased headers as keys, body, query, timestamp), plus ours when asked.

    A subscriber that reads only ours (hookinspect's own, `?raw=1&smee=0`) is spared the flat
    shape: re-encoding the parsed body costs the relay more than the rest of the event.
    """
    if event.sealed:  # nothing of it can be shown in smee's shape: the laptop opens it
        return {"timestamp": event.received_us // 1000, "hookinspect": {
            "id": event.id, "received_us": event.received_us, "sealed": base64.b64encode(event.body).decode()}}
    if include_raw and not include_smee:
        return {"timestamp": event.received_us // 1000, "hookinspect": _raw_fields(event, remote)}
    data: dict = {}
    for name, value in event.headers:
        data[name.lower()] = value
    content_type = parse_content_type(dict((k.lower(), v) for k, v in event.headers).get("content-type")).mime
    parsed = parse_json(event.body) if content_type.endswith("json") else NOT_JSON
    if parsed is not NOT_JSON:
        data["body"] = parsed
    elif content_type == "application/x-www-form-urlencoded":
        data["body"] = dict(parse_qsl(event.body.decode("utf-8", "replace"), keep_blank_values=True))
    else:
        data["body"] = {}
    data["query"] = dict(parse_qsl(event.query, keep_blank_values=True))
    data["timestamp"] = event.received_us // 1000
    if include_raw:
        data["hookinspect"] = _raw_fields(event, remote)
    return data


def _raw_fields(event: RelayEvent, remote: str | None) -> dict:
    """The request exactly as it arrived: what a subscriber needs to store it byte for byte."""
    return {
        "id": event.id, "method": event.method, "path": event.path, "query": event.query,
        "headers": [[k, v] for k, v in event.headers], "body_base64": base64.b64encode(event.body).decode(),
        "received_us": event.received_us, "remote": remote,
    }


async def subscribe(request: web.Request, channel: Channel) -> web.StreamResponse:
    if not channel.accepts_token(_token(request)):
        return web.json_response({"error": NEEDS_TOKEN}, status=401)
    storage = request.app[STORAGE_KEY]
    settings = request.app[SETTINGS_KEY]
    hub = request.app[HUB_KEY]
    router = request.app[ROUTER_KEY]
    subscription = _subscription(request, channel)
    if isinstance(subscription, web.Response):
        return subscription
    if subscription.subscriber is not None:
        try:
            await asyncio.to_thread(router.register, channel.id, subscription, request.query.get("claim", ""))
        except StoreError as exc:
            return request.app[HEALTH_KEY].failed(exc)
    include_raw = request.query.get("raw") in ("1", "true")
    include_smee = request.query.get("smee") not in ("0", "false")
    last = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or ""
    last_id = parse_number(last)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "Connection": "keep-alive", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    recent = request.query.get("recent", "")
    if last_id is None:
        # Without Last-Event-ID a subscription starts with what arrives from now on, as with smee
        # (or with the `recent` newest ones, at most 100: the channel page shows them).
        skip = min(parse_number(recent) or 0, 100)
        last_id = await asyncio.to_thread(storage.last_event_id, channel.id, skip)
    # Only now: everything posted after a subscriber sees `ready` reaches it.
    await response.write(b"event: ready\ndata: {}\n\n")
    last_ping = renewed = time.monotonic()
    is_caught_up = False
    closing = request.app[CLOSING_KEY]
    try:
        while not closing.is_set():
            waiter = hub.waiter(channel.id)
            events = hub.recent_after(channel.id, last_id, 500)
            if events is None:  # catching up from further back than memory reaches
                events = await asyncio.to_thread(storage.events_after, channel.id, last_id, 500)
            if events and channel.seal_key is None:
                claims = router.cached(channel.id)
                if claims is None:  # read at most once a second: other instances' subscribers may claim
                    claims = await asyncio.to_thread(router.claims, channel.id)
                scanned_to = events[-1].id
                events = router.select(events, subscription, claims)
                if not events:  # none of these is this subscriber's: look further
                    last_id = scanned_to
                    continue
            if events:
                chunk = bytearray()
                for event in events:
                    data = json.dumps(smee_payload(event, include_raw, include_smee=include_smee), separators=(",", ":"))
                    chunk += f"id: {event.id}\ndata: {data}\n\n".encode()
                    last_id = event.id
                await response.write(bytes(chunk))
                continue
            if not is_caught_up:  # the backlog is sent; smee-client ignores named events
                await response.write(b"event: caught-up\ndata: {}\n\n")
                is_caught_up = True
            if time.monotonic() - last_ping >= settings.ping_seconds:
                await response.write(b"event: ping\ndata: {}\n\n")
                last_ping = time.monotonic()
            if subscription.subscriber is not None and time.monotonic() - renewed >= RENEW_SECONDS:
                # A connected laptop's claim stays alive; one gone for good lapses after the TTL.
                await asyncio.to_thread(router.register, channel.id, subscription, request.query.get("claim", ""))
                renewed = time.monotonic()
            try:
                async with asyncio.timeout(settings.ping_seconds):  # no task per wait, unlike wait_for
                    await waiter.wait()
            except TimeoutError:
                pass
    except (ConnectionResetError, asyncio.CancelledError, StoreError):  # a failing store ends the stream: clients resume
        pass
    return response
