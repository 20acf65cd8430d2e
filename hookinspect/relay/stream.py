"""Subscribers stream a channel as Server-Sent Events, smee's flat shape or the exact bytes,
resuming after `Last-Event-ID`, each getting its share of a claimed channel."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import parse_qsl

from aiohttp import web

from hookinspect.body import NOT_JSON, parse_content_type, parse_json
from hookinspect.errors import StoreError, UsageError
from hookinspect.relay.claims import (
    RENEW_SECONDS,
    Subscription,
    parse_claim,
)
from hookinspect.relay.metrics import StreamState
from hookinspect.relay.sse import RESTART
from hookinspect.relay.state import (
    CLOSING_KEY,
    HEALTH_KEY,
    HUB_KEY,
    METRICS_KEY,
    NEEDS_TOKEN,
    ROUTER_KEY,
    SETTINGS_KEY,
    STORAGE_KEY,
    token_of,
)
from hookinspect.relay.storage import Channel, RelayEvent
from hookinspect.values import parse_number


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


def smee_payload(event: RelayEvent, include_raw: bool, remote: str | None = None, include_smee: bool = True) -> dict:
    """smee's flat shape (lower-cased headers as keys, body, query, timestamp), plus ours when asked.

    A subscriber that reads only ours (hookinspect's own, `?raw=1&smee=0`) is spared the flat
    shape: re-encoding the parsed body costs the relay more than the rest of the event.
    """
    if event.sealed:  # nothing of it can be shown in smee's shape: the laptop opens it
        return {"timestamp": event.received_us // 1000, "hookinspect": {
            "id": event.id, "received_us": event.received_us, "sealed": base64.b64encode(event.body).decode()}}
    if include_raw and not include_smee:
        return {"timestamp": event.received_us // 1000, "hookinspect": raw_fields(event, remote)}
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
        data["hookinspect"] = raw_fields(event, remote)
    return data


def raw_fields(event: RelayEvent, remote: str | None) -> dict:
    """The request exactly as it arrived: what a subscriber needs to store it byte for byte."""
    return {
        "id": event.id, "method": event.method, "path": event.path, "query": event.query,
        "headers": [[k, v] for k, v in event.headers], "body_base64": base64.b64encode(event.body).decode(),
        "received_us": event.received_us, "remote": remote,
    }


# The last event of a stream that a draining relay ends: resume now (`retry` ms), elsewhere or here.
RESTART_EVENT = f"event: {RESTART}\nretry: 250\ndata: {{}}\n\n".encode()


async def subscribe(request: web.Request, channel: Channel) -> web.StreamResponse:
    if not channel.accepts_token(token_of(request)):
        return web.json_response({"error": NEEDS_TOKEN}, status=401)
    storage = request.app[STORAGE_KEY]
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
    metrics = request.app[METRICS_KEY]
    opened = time.monotonic()
    with metrics.stream(channel.id, last_id) as state:
        try:
            await _send(request, response, channel, subscription, state, include_raw, include_smee)
        except (ConnectionResetError, asyncio.CancelledError, StoreError):  # a failing store ends the stream: clients resume
            pass
        if request.app[CLOSING_KEY].is_set():
            try:  # the relay is draining: the subscriber resumes at once instead of backing off
                await response.write(RESTART_EVENT)
            except (ConnectionResetError, asyncio.CancelledError):
                pass
    request.app[SETTINGS_KEY].log.request("stream", channel.id, 200, time.monotonic() - opened, "ended",
                                          request.remote)
    return response


async def _send(request: web.Request, response: web.StreamResponse, channel: Channel, subscription: Subscription,
                state: StreamState, include_raw: bool, include_smee: bool) -> None:
    """Send the channel's events after `state.cursor` as they come, until the relay closes."""
    storage = request.app[STORAGE_KEY]
    settings = request.app[SETTINGS_KEY]
    hub = request.app[HUB_KEY]
    router = request.app[ROUTER_KEY]
    metrics = request.app[METRICS_KEY]
    closing = request.app[CLOSING_KEY]
    last_ping = renewed = time.monotonic()
    is_caught_up = False
    while not closing.is_set():
        waiter = hub.waiter(channel.id)
        events = hub.recent_after(channel.id, state.cursor, 500)
        if events is None:  # catching up from further back than memory reaches
            with metrics.timed("read"):
                events = await asyncio.to_thread(storage.events_after, channel.id, state.cursor, 500)
        if events and channel.seal_key is None:
            claims = router.cached(channel.id)
            if claims is None:  # read at most once a second: other instances' subscribers may claim
                claims = await asyncio.to_thread(router.claims, channel.id)
            scanned_to = events[-1].id
            events = router.select(events, subscription, claims)
            if not events:  # none of these is this subscriber's: look further
                state.cursor = scanned_to
                continue
        if events:
            chunk = bytearray()
            for event in events:
                data = json.dumps(smee_payload(event, include_raw, include_smee=include_smee), separators=(",", ":"))
                chunk += f"id: {event.id}\ndata: {data}\n\n".encode()
            await response.write(bytes(chunk))
            state.cursor = events[-1].id
            metrics.delivered.inc(len(events))
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
