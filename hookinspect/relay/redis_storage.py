"""The relay's storage on Redis: any number of relay instances share channels, events, claims
and rate limits, and an event posted to one reaches the subscribers of every other at once.

Keys, under a prefix (`hookinspect:relay:`):
  channels          hash    channel id -> the channel as JSON
  events:<channel>  stream  one entry per event; Redis numbers entries in order across instances
  claims:<channel>  hash    subscriber -> its claim as JSON
  bucket:<key>      hash    a token bucket (tokens, updated), shared by every instance
  new               pub/sub a channel id, published after events of that channel are stored

An event's id is its stream entry id `ms-seq` as one integer (ms * 1,000,000 + seq): the SSE
`id:` and `Last-Event-ID` a subscriber resumes with, on whichever instance it reconnects to.
Retention trims each stream by count and by age (entry ids carry their time).

An event is acknowledged once Redis has it; how it survives a power cut is Redis's own
persistence (`appendonly yes` with `appendfsync always` for every acknowledged event).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import redis

from hookinspect.errors import StoreError
from hookinspect.formats.redaction import redact_url
from hookinspect.relay.redis_address import RedisAddress, parse_redis_address
from hookinspect.relay.storage import (
    Channel,
    ChannelLimitReached,
    Claim,
    RelayEvent,
    RelayStorage,
    StateCallback,
    new_channel,
)

PREFIX = "hookinspect:relay:"
SEQ_PER_MS = 1_000_000  # entries Redis numbers within one millisecond stay far below this
PUBSUB_BACKOFF = (0.2, 0.5, 1, 2, 5)

# Creates a channel unless the relay holds its limit already (one step for every instance).
_CREATE_CHANNEL = """
local limit = tonumber(ARGV[2])
if limit >= 0 and redis.call('HLEN', KEYS[1]) >= limit then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# Takes up to ARGV[3] tokens from a bucket refilled at ARGV[1] per second up to ARGV[2]; the
# clock is Redis's, so instances on machines whose clocks differ still share one rate.
_TAKE_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return granted
"""


# Counts a stream's entries after an id, up to a cap, without sending them.
_COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
"""


def shown(url: str) -> str:
    """A Redis URL as messages show it: without its password."""
    return redact_url(url)[0]


def entry_to_id(entry: bytes | str) -> int:
    text = entry.decode() if isinstance(entry, bytes) else entry
    ms, _, seq = text.partition("-")
    return int(ms) * SEQ_PER_MS + int(seq or 0)


def id_to_entry(event_id: int) -> str:
    ms, seq = divmod(event_id, SEQ_PER_MS)
    return f"{ms}-{seq}"


class RedisRelayStorage(RelayStorage):
    shared = True

    def __init__(self, url: str, prefix: str = PREFIX, *, replicas_ack: int = 0, replicas_timeout: float = 1.0) -> None:
        self.url = url
        self.address = parse_redis_address(url)
        self.prefix = prefix
        # A failover promotes a replica: what the primary acknowledged and no replica had is
        # gone. With replicas_ack, a sender's 200 waits until that many replicas have the event.
        self.replicas_ack = replicas_ack
        self.replicas_timeout = replicas_timeout
        try:
            self._redis = self.address.client(socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
            self._redis.ping()
        except (redis.RedisError, ValueError, OSError) as exc:
            raise StoreError(f"cannot reach Redis at {shown(url)}: {exc}") from None
        self._create_channel = self._redis.register_script(_CREATE_CHANNEL)
        self._count_after = self._redis.register_script(_COUNT_AFTER)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- channels and claims -----------------------------------------------------------------

    def create_channel(self, is_public: bool, max_channels: int | None = None,
                       seal_key: str | None = None) -> tuple[Channel, str | None]:
        channel, token = new_channel(is_public, seal_key)
        data = json.dumps({"public": is_public, "token_hash": channel.token_hash, "created_at": channel.created_at,
                           "seal_key": seal_key})
        if not self._call("create_channel", self._create_channel, keys=[self.key("channels")],
                          args=[channel.id, -1 if max_channels is None else max_channels, data]):
            raise ChannelLimitReached()
        return channel, token

    def channel(self, channel_id: str) -> Channel | None:
        raw = self._call("hget", self._redis.hget, self.key("channels"), channel_id)
        if raw is None:
            return None
        data = json.loads(raw)
        return Channel(channel_id, data["public"], data["token_hash"], data["created_at"], data.get("seal_key"))

    def set_claim(self, channel_id: str, claim: Claim) -> None:
        self._call("hset", self._redis.hset, self.key("claims", channel_id), claim.subscriber,
                   json.dumps({"filter": claim.filter, "default": claim.is_default, "seen_at": claim.seen_at}))

    def claims(self, channel_id: str) -> list[Claim]:
        found = self._call("hgetall", self._redis.hgetall, self.key("claims", channel_id))
        claims = []
        for name, raw in sorted(found.items()):
            data = json.loads(raw)
            claims.append(Claim(name.decode(), data["filter"], data["default"], data["seen_at"]))
        return claims

    def delete_claim(self, channel_id: str, subscriber: str) -> bool:
        return bool(self._call("hdel", self._redis.hdel, self.key("claims", channel_id), subscriber))

    # -- events ------------------------------------------------------------------------------

    def append(self, event: RelayEvent) -> int:
        return self.append_many([event])[0]

    def append_many(self, events: list[RelayEvent]) -> list[int]:
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.key("events", event.channel), {
                "r": event.received_us, "m": event.method, "p": event.path, "q": event.query,
                "h": json.dumps(event.headers, ensure_ascii=True), "b": event.body, "s": int(event.sealed)})
        for channel in dict.fromkeys(event.channel for event in events):
            pipe.publish(self.key("new"), channel)
        if self.replicas_ack:
            pipe.execute_command("WAIT", self.replicas_ack, max(1, int(self.replicas_timeout * 1000)))
        results = self._call("append", pipe.execute)
        if self.replicas_ack and results[-1] < self.replicas_ack:
            # Stored on the primary (a subscriber may get it), but a failover could lose it: the
            # sender is not acknowledged, and sends it again (at least once).
            raise StoreError(f"{results[-1]} of the {self.replicas_ack} Redis replicas asked for (--replicas-ack) "
                             f"confirmed within {self.replicas_timeout:g} s")
        return [entry_to_id(entry) for entry in results[:len(events)]]

    def events_after(self, channel_id: str, after_id: int, limit: int = 500) -> list[RelayEvent]:
        start = "(" + id_to_entry(after_id) if after_id > 0 else "-"
        entries = self._call("xrange", self._redis.xrange, self.key("events", channel_id), start, "+", limit)
        return [self._event(channel_id, entry, fields) for entry, fields in entries]

    def count_after(self, channel_id: str, after_id: int, cap: int) -> int:
        start = "(" + id_to_entry(after_id) if after_id > 0 else "-"
        return int(self._call("count_after", self._count_after, keys=[self.key("events", channel_id)], args=[start, cap]))

    def last_event_id(self, channel_id: str, skip: int = 0) -> int:
        entries = self._call("xrevrange", self._redis.xrevrange, self.key("events", channel_id), "+", "-", skip + 1)
        return entry_to_id(entries[-1][0]) if len(entries) == skip + 1 else 0

    def prune(self, keep_per_channel: int, max_age_seconds: float) -> int:
        cutoff_ms = int((time.time() - max_age_seconds) * 1000)
        removed = 0
        for channel in self._call("hkeys", self._redis.hkeys, self.key("channels")):
            stream = self.key("events", channel.decode())
            removed += self._call("xtrim", self._redis.xtrim, stream, minid=f"{cutoff_ms}-0", approximate=False)
            removed += self._call("xtrim", self._redis.xtrim, stream, maxlen=keep_per_channel, approximate=False)
        return removed

    def close(self) -> None:
        self._redis.close()

    # -- what a shared store adds -----------------------------------------------------------

    async def watch(self, notify: Callable[[str], None], resync: Callable[[], None],
                    on_state: StateCallback = lambda _event, _message, level="warning": None) -> None:
        """Call `notify(channel)` whenever any instance stores events, until cancelled; after
        each (re)subscription `resync()` wakes every subscriber (something may have come
        while this instance was not listening)."""
        failures = 0
        while True:
            client = self.address.async_client(socket_connect_timeout=5)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.key("new"))
                    if failures:
                        on_state("redis.notifications_recovered", "Redis notifications work again", level="info")
                    failures = 0
                    resync()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            notify(message["data"].decode())
            except (redis.RedisError, OSError) as exc:
                delay = PUBSUB_BACKOFF[min(failures, len(PUBSUB_BACKOFF) - 1)]
                if not failures:  # said once, not at every retry
                    on_state("redis.notifications_lost", f"Redis notifications lost ({exc}); retrying until Redis answers")
                failures += 1
                await asyncio.sleep(delay)
            finally:
                await client.aclose()

    def rate_limiter(self) -> SharedRateLimiter:
        return SharedRateLimiter(self.address, self.key("bucket"), lambda: self.on_round_trip("rate_lease"))

    # -- the parts ---------------------------------------------------------------------------

    def _event(self, channel_id: str, entry: bytes, fields: dict[bytes, bytes]) -> RelayEvent:
        return RelayEvent(entry_to_id(entry), channel_id, int(fields[b"r"]), fields[b"m"].decode(), fields[b"p"].decode(),
                          fields[b"q"].decode(), [tuple(pair) for pair in json.loads(fields[b"h"])],  # type: ignore[misc]
                          fields[b"b"], fields.get(b"s") == b"1")

    def _call(self, operation: str, function, *args, **kwargs):  # noqa: ANN001, ANN202 - any redis call
        self.on_round_trip(operation)
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {shown(self.url)}: {exc}") from None


class SharedRateLimiter:
    """Token buckets kept in Redis, so a limit holds across every relay instance. Each instance
    takes tokens a few at a time (a lease) and spends them locally: one round trip per lease,
    not per request; a lease unused for a second is given up."""

    LEASE_SECONDS = 1.0

    def __init__(self, address: RedisAddress, prefix: str, on_round_trip: Callable[[], None] = lambda: None) -> None:
        self._on_round_trip = on_round_trip
        self._client = address.async_client(socket_connect_timeout=5, socket_timeout=5)
        self._take = self._client.register_script(_TAKE_TOKENS)
        self._prefix = prefix
        self._leases: dict[str, tuple[int, float]] = {}  # key -> (tokens left, taken at)
        self._taking: dict[str, asyncio.Future[None]] = {}  # one lease asked at a time per key

    async def allow(self, key: str, rate: float, burst: int) -> bool:
        while True:  # a lease another request is fetching: wait for it, then look again
            left, taken_at = self._leases.get(key, (0, 0.0))
            if left > 0 and time.monotonic() - taken_at < self.LEASE_SECONDS:
                self._leases[key] = (left - 1, taken_at)
                return True
            pending = self._taking.get(key)
            if pending is None:
                break
            await asyncio.shield(pending)
        return await self._lease(key, rate, burst)

    async def _lease(self, key: str, rate: float, burst: int) -> bool:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._taking[key] = done
        try:
            lease = max(1, min(64, burst // 32))
            self._on_round_trip()
            try:
                granted = int(await self._take(keys=[self._prefix + ":" + key], args=[rate, burst, lease]))
            except (redis.RedisError, OSError):
                return True  # a limit that cannot be checked does not refuse deliveries
            if len(self._leases) > 50_000:  # strangers' keys must not pile up
                self._leases.clear()
            if granted <= 0:
                self._leases.pop(key, None)
                return False
            self._leases[key] = (granted - 1, time.monotonic())
            return True
        finally:
            self._taking.pop(key, None)
            done.set_result(None)

    async def aclose(self) -> None:
        await self._client.aclose()
