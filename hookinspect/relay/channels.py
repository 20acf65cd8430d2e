"""The channels API: new channels (smee's /new and POST /api/channels), a channel by its id and
token, and its claims."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from hookinspect.errors import StoreError
from hookinspect.relay.sealing import checked_public_key
from hookinspect.relay.state import (
    CHANNELS_KEY,
    HEALTH_KEY,
    NEEDS_TOKEN,
    ROUTER_KEY,
    SETTINGS_KEY,
    STORAGE_KEY,
    allow,
    base_url,
    token_of,
)
from hookinspect.relay.storage import Channel, ChannelLimitReached


async def _may_create_channel(request: web.Request) -> bool:
    per_minute = request.app[SETTINGS_KEY].channels_per_minute
    return await allow(request.app, f"new-channel {request.remote}", per_minute / 60, per_minute)


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
    raise web.HTTPTemporaryRedirect(f"{base_url(request)}/{created[0].id}")


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
    return web.json_response({"id": channel.id, "url": f"{base_url(request)}/{channel.id}", "token": token,
                              "public": is_public, "sealed": seal_key is not None}, status=201)


async def named_channel(request: web.Request) -> Channel | web.Response:
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
    channel = await named_channel(request)
    if isinstance(channel, web.Response) or channel.accepts_token(token_of(request)):
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
