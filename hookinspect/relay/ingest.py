"""A sender posts to a channel: limits first (rate, headers, body), then the event is stored
(group commit) and only then answered."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from hookinspect.errors import StoreError
from hookinspect.net.budgets import (
    RETRY_AFTER_BUSY,
    BodyTooLarge,
    OverBudget,
    header_bytes,
    read_body,
)
from hookinspect.relay.sealing import seal
from hookinspect.relay.state import (
    APPENDER_KEY,
    BUDGET_KEY,
    HEALTH_KEY,
    SETTINGS_KEY,
    RelaySettings,
    allow,
    refused,
    sender_address,
)
from hookinspect.relay.storage import Channel, RelayEvent
from hookinspect.relay.stream import raw_fields
from hookinspect.values import now_us


def body_too_large(settings: RelaySettings) -> web.Response:
    return web.json_response({"error": f"body over the relay's limit of {settings.max_body} bytes"},
                             status=413, headers={"Connection": "close"})


def refuse_declared_body(request: web.Request) -> web.Response | None:
    """A body announced over the limit is refused before `100 Continue` invites it."""
    settings = request.app[SETTINGS_KEY]
    if request.content_length is not None and request.content_length > settings.max_body:
        return body_too_large(settings)
    return None


async def ingest(request: web.Request, channel: Channel) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if not await allow(request.app, channel.id):
        return web.json_response({"error": "rate limit for this channel exceeded"}, status=429,
                                 headers={"Retry-After": "1"})
    if not await allow(request.app, f"address {sender_address(request)}", settings.address_rate_per_second,
                        settings.address_burst):
        return refused("rate_limited_address", web.json_response(
            {"error": "rate limit for your address exceeded"}, status=429, headers={"Retry-After": "1"}))
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
            return refused("busy", web.json_response(
                {"error": "the relay is busy receiving other bodies; retry shortly"}, status=503,
                headers={"Retry-After": str(RETRY_AFTER_BUSY), "Connection": "close"}))
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


def sealed_event(event: RelayEvent, public_key: str) -> RelayEvent:
    """The event encrypted to its channel's key: method, path, query, headers and body inside."""
    plaintext = json.dumps(raw_fields(event, None), separators=(",", ":")).encode()
    return RelayEvent(0, event.channel, event.received_us, "", "", "", [], seal(public_key, plaintext), sealed=True)
