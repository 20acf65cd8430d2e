"""The relay server: public senders post to a channel; subscribers stream it as Server-Sent Events.

It speaks smee.io's protocol (HEAD|GET /new, SSE on GET /<channel>, the flat JSON `data:`),
so smee-client works against it, and adds what smee lacks: every delivery is stored, a
subscriber that reconnects with `Last-Event-ID` gets everything it missed, private channels
need a token, and subscribers that ask (`?raw=1`) get the exact bytes, so signatures verify
(`&smee=0` leaves smee's flat shape out for those that read only the exact bytes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web

from hookinspect.errors import StoreError
from hookinspect.net.budgets import (
    BodyBudget,
)
from hookinspect.net.guard import host_guard
from hookinspect.net.server import continue_unless
from hookinspect.relay.channels import (
    create_channel,
    list_claims,
    named_channel,
    new_channel_redirect,
    release_claim,
)
from hookinspect.relay.claims import (
    ClaimRouter,
)
from hookinspect.relay.hub import BatchingAppender, ChannelHub
from hookinspect.relay.ingest import ingest, refuse_declared_body
from hookinspect.relay.metrics import OUTCOME, RelayMetrics, outcome_of, token_matches
from hookinspect.relay.pages import PAGE_HEADERS, channel_page_file, page_file
from hookinspect.relay.state import (
    APPENDER_KEY,
    BUDGET_KEY,
    CHANNELS_KEY,
    CLOSING_KEY,
    HEALTH_KEY,
    HUB_KEY,
    LIMITER_KEY,
    METRICS_KEY,
    ROUTER_KEY,
    SETTINGS_KEY,
    STORAGE_KEY,
    RelaySettings,
    StorageHealth,
    token_of,
)
from hookinspect.relay.storage import RelayStorage
from hookinspect.relay.stream import subscribe
from hookinspect.values import MAX_NUMBER


def create_relay_app(storage: RelayStorage, settings: RelaySettings | None = None) -> web.Application:
    settings = settings or RelaySettings()
    # Senders post from servers and subscribers stream from anywhere; only the API (channels,
    # claims) is refused to pages of other sites.
    sites = host_guard(settings.hosts, guarded=lambda request: request.path.startswith(("/api/", "/metrics")))
    app = web.Application(client_max_size=0, middlewares=[sites])
    app[STORAGE_KEY] = storage
    app[SETTINGS_KEY] = settings
    app[HUB_KEY] = ChannelHub(remember=not storage.shared)
    app[METRICS_KEY] = metrics = RelayMetrics(settings.metrics_per_channel)
    storage.on_round_trip = metrics.round_trip
    app[LIMITER_KEY] = storage.rate_limiter()
    app[CLOSING_KEY] = asyncio.Event()
    app[CHANNELS_KEY] = {}
    app[BUDGET_KEY] = BodyBudget()
    app[APPENDER_KEY] = BatchingAppender(storage, app[HUB_KEY], metrics)
    app[ROUTER_KEY] = ClaimRouter(storage, app[SETTINGS_KEY].claims_refresh_seconds,
                                  app[SETTINGS_KEY].claim_ttl_seconds)
    app[HEALTH_KEY] = StorageHealth(settings.log)
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.append(_retention)
    app.cleanup_ctx.append(_appender)
    app.cleanup_ctx.append(_shared_store)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
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
    task = asyncio.create_task(app[STORAGE_KEY].watch(hub.notify, hub.notify_all, app[SETTINGS_KEY].log.state))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await app[LIMITER_KEY].aclose()


async def _end_streams(app: web.Application) -> None:
    """The drain: new connections are refused and idle ones closed by now; what is in flight is
    answered (for up to `drain_seconds`), and each stream ends with `restart`, which tells a
    subscriber to resume at once, on another instance or this one once it is back."""
    app[SETTINGS_KEY].log.state("relay.draining", f"stopping: answering what is in flight (at most "
                                f"{app[SETTINGS_KEY].drain_seconds:g} s), ending {len(app[METRICS_KEY].streams)} "
                                "streams with `restart`", level="info")
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
                    settings.log.state("prune.failing", f"pruning old deliveries failed ({type(exc).__name__}: "
                                       f"{exc}); trying every minute")
                said = True
            else:
                said = False

    task = asyncio.create_task(prune_forever())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def metrics_endpoint(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if settings.metrics_token is not None:
        if not token_matches(token_of(request), settings.metrics_token):
            return web.json_response({"error": "/metrics needs the relay's metrics token (Authorization: Bearer …)"},
                                     status=401)
    elif not settings.metrics_open:
        raise web.HTTPNotFound()  # a public relay shows its traffic only to who has the token
    body, content_type = await request.app[METRICS_KEY].exposition(
        request.headers.get("Accept", ""), request.app[STORAGE_KEY].count_after)
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = content_type
    return response


async def channel_endpoint(request: web.Request) -> web.StreamResponse:
    started = time.monotonic()
    channel = await named_channel(request)
    if isinstance(channel, web.Response):
        if "text/event-stream" not in request.headers.get("Accept", ""):  # a sender's post to no channel
            _answered(request, None, channel, started)
        return channel
    if request.method == "GET" and "text/event-stream" in request.headers.get("Accept", ""):
        return await subscribe(request, channel)
    if request.method == "GET" and not request.match_info.get("tail") and "text/html" in request.headers.get("Accept", ""):
        # A browser: the channel's page (its events, live, as smee.io shows them); the page
        # itself holds nothing of the channel, and the events need the token as a stream does.
        return web.Response(body=page_file("channel.html"), content_type="text/html", headers=PAGE_HEADERS)
    response = await ingest(request, channel)
    _answered(request, channel.id, response, started)
    return response


def _answered(request: web.Request, channel: str | None, response: web.StreamResponse, started: float) -> None:
    """A sender's request, counted and (with request lines on) logged."""
    outcome = outcome_of(response.status, response.get(OUTCOME))
    request.app[METRICS_KEY].answered(outcome, started)
    request.app[SETTINGS_KEY].log.request("delivery", channel, response.status, time.monotonic() - started, outcome,
                                          request.remote)


# The channel page's files, shared with the web inspector, under the same strict policy.
