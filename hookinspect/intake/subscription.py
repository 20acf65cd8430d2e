"""`listen --source`: subscribe to a relay channel (ours or smee.io) and store what it brings.

Each delivery is stored with its origin (`<channel url>#<event id>`), never twice (a unique
index), and the subscription resumes after the newest stored origin with `Last-Event-ID`,
so a reconnect or a restart (even after kill -9) neither loses nor repeats a delivery.

Several URLs of one channel (relay instances sharing a store, which number events alike) are
tried in turn: when one fails, the next one resumes exactly where the stream stopped. Their
origins all use the first URL, so the store sees one channel whichever instance served it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from hookinspect.config import DEFAULT_MAX_BODY
from hookinspect.errors import StoreError, UsageError, one_line
from hookinspect.model import REENCODED_NOTE, Delivery, Headers
from hookinspect.recorder import Recorder
from hookinspect.relay.sealing import SealError, open_sealed
from hookinspect.relay.sse import RESTART, TOO_LARGE, ServerSentEvent, read_events
from hookinspect.relay.storage import Claim
from hookinspect.values import MAX_NUMBER, now_us, parse_number

# Deliveries handed to the writer but not yet confirmed, at most.
MAX_IN_FLIGHT = 256
# Reconnect delays in seconds; the last one repeats.
BACKOFF = (0.5, 1, 2, 4, 8, 15, 30)
# A stream silent for this long is dead (relays ping every 30 s, smee.io too): reconnect.
SILENCE_SECONDS = 120.0
CONNECT_SECONDS = 10.0
# After a relay said it restarts: reconnect this often, for this long, before backing off.
RESTART_RETRY_SECONDS = 0.25
RESTART_PATIENCE_SECONDS = 30.0


class RelayRestarting(Exception):
    """The relay ended the stream to restart (it is draining): resume at once."""


class RelayRefused(Exception):
    """The relay answered the subscription with an error status."""

    def __init__(self, status: int, said: str | None) -> None:
        super().__init__(f"the relay answered {status}")
        self.status = status
        self.said = said


def max_event_bytes(max_body: int) -> int:
    """The largest event worth reading for a body of at most `max_body` bytes: base64 of the
    body, and room for the request line, headers and JSON around it."""
    return max_body * 4 // 3 + 1024 * 1024


def channel_url(source: str) -> str:
    """The channel URL without query or fragment: the prefix of every origin from it."""
    parts = urlsplit(source)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def relay_error(body: bytes) -> str | None:
    """The `error` a relay of ours put in a refusal (its body), one line, or None."""
    try:
        said = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    return one_line(said) if said else None


def checked_sources(urls: list[str]) -> tuple[str, ...]:
    """Several --source URLs must name one channel (the same id on relay instances that share
    a store); anything else is a mistake worth one line."""
    ids = {channel_url(url).rsplit("/", 1)[-1] for url in urls}
    if len(ids) > 1:
        raise UsageError(f"--source URLs name different channels ({', '.join(sorted(ids))}): repeat --source only "
                         "for the same channel on relay instances that share their storage")
    return tuple(urls)


def delivery_from_event(data: dict[str, Any], event_id: str, source: str, seal_key: bytes | None = None) -> Delivery:
    """The stored delivery: byte-exact from our relay's raw data (opened with the channel's key
    when sealed), rebuilt (and marked) from smee's JSON."""
    origin = f"{channel_url(source)}#{event_id}"
    raw = data.get("hookinspect")
    if isinstance(raw, dict) and "sealed" in raw:
        if seal_key is None:
            raise SealError("the channel is sealed and no key was found for it")
        raw = json.loads(open_sealed(seal_key, base64.b64decode(raw["sealed"])))
    if isinstance(raw, dict):
        return Delivery(
            method=raw["method"], path=raw["path"] or "/", query=raw.get("query") or "",
            headers=Headers((k, v) for k, v in raw["headers"]), body=base64.b64decode(raw["body_base64"], validate=True),
            received_us=_plausible_time_us(raw.get("received_us")),
            remote_addr=raw.get("remote"), source="relay", origin=origin,
        )
    body = json.dumps(data.get("body", {}), separators=(",", ":")).encode()
    skip = {"body", "query", "timestamp", "host", "content-length"}
    headers = [(k, str(v)) for k, v in data.items() if k not in skip and isinstance(v, str | int | float)]
    headers = [(k, v) for k, v in headers if k != "content-type"] + [("content-type", "application/json")]
    query = urlencode(data.get("query") or {})
    delivery = Delivery(method="POST", path="/", query=query, headers=Headers(headers), body=body,
                        source="relay", origin=origin, note=REENCODED_NOTE)
    if isinstance(data.get("timestamp"), int):
        delivery.received_us = _plausible_time_us(data["timestamp"] * 1000)
    return delivery


def _plausible_time_us(value: object) -> int:
    """A relay's receive time in µs, or now if it sent none (or one the store cannot hold)."""
    return value if type(value) is int and 0 < value <= MAX_NUMBER else now_us()


class RelaySubscriber:
    """Keeps one subscription alive and stores every delivery it brings."""

    def __init__(self, sources: str | tuple[str, ...], recorder: Recorder, *, token: str | None = None,
                 on_state: Callable[[str], None] | None = None, seal_key: bytes | None = None,
                 seal_key_source: str = "", claim: Claim | None = None, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.claim = claim
        self.max_event_bytes = max_event_bytes(max_body)
        self.max_body = max_body
        self.seal_key = seal_key
        self.seal_key_source = seal_key_source  # where the key is (or was looked for), for messages
        self.sources = (sources,) if isinstance(sources, str) else tuple(sources)
        self.source = self.sources[0]  # the one in use; the next one after a failure
        self.recorder = recorder
        self.token = token
        self.on_state = on_state or (lambda _message: None)
        self.prefix = f"{channel_url(self.sources[0])}#"
        self.stored = 0
        self.duplicates = 0
        # A store that failed (a full disk): the stream is let go, and the next subscription
        # resumes before the first event that was not stored, even if later ones were.
        self._store_failed: Exception | None = None
        self._resume_cap: int | None = None

    def _subscribe_url(self) -> str:
        parts = urlsplit(self.source)
        # Ours sends the exact bytes, and with smee=0 nothing else (an older relay of ours sends
        # smee's shape as well; smee.io ignores both and sends only its shape).
        query = parts.query + ("&" if parts.query else "") + "raw=1&smee=0"
        if self.claim is not None:  # this laptop's share of the channel (relay/claims.py)
            asked = {"subscriber": self.claim.subscriber}
            if self.claim.filter:
                asked["claim"] = self.claim.filter
            if self.claim.is_default:
                asked["default"] = "1"
            query += "&" + urlencode(asked)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    async def _resume_after(self) -> int | None:
        newest = await self.recorder.workspace.read(lambda store: store.latest_origin_id(self.prefix))
        cap, self._resume_cap, self._store_failed = self._resume_cap, None, None
        return newest if cap is None or newest is None else min(newest, cap)

    async def run(self) -> None:
        """Subscribe until cancelled, reconnecting with backoff (reset once a connection worked)."""
        failures = 0
        down_since: str | None = None
        restarting_until = 0.0  # monotonic: until then, a relay that said it restarts is retried quickly
        restart_said = False
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS, sock_read=SILENCE_SECONDS)
        # No decompression: a relay's events are read as sent (and counted against the bound so).
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            while True:
                self._is_ready = False
                backs_off = False
                try:
                    await self._stream(session)
                    reason = "the relay closed the stream"
                except RelayRestarting:
                    reason = "the relay is restarting"
                    restarting_until, restart_said = time.monotonic() + RESTART_PATIENCE_SECONDS, False
                except SealError as exc:  # retrying cannot help; the relay keeps the events for a right key
                    self.on_state(f"stopped: cannot open a sealed event: {exc} ({self.seal_key_source}); "
                                  "nothing was stored from it, and the relay keeps it")
                    return
                except StoreError as exc:  # the relay keeps the events: they come again once storing works
                    reason, backs_off = f"storing failed: {exc.message}", True
                except RelayRefused as exc:
                    reason = {401: "the relay wants the channel token (--token)", 403: "the token was refused",
                              404: "no such channel on the relay"}.get(exc.status, str(exc))
                    if exc.said and exc.status not in (401, 403, 404):
                        reason += f": {exc.said}"
                except TimeoutError:
                    reason = f"nothing heard for {SILENCE_SECONDS:g} s" if self._is_ready else "no answer in time"
                except aiohttp.ClientConnectorError as exc:
                    errno = getattr(exc.os_error, "errno", None)
                    reason = f"cannot connect to {exc.host}:{exc.port}" + (f" ({os.strerror(errno)})" if errno else "")
                except (aiohttp.ClientError, OSError) as exc:
                    reason = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
                except Exception as exc:  # noqa: BLE001 - a flaw must not end the subscription while listen looks alive
                    reason, backs_off = f"unexpected {exc.__class__.__name__}: {exc}", True
                # A connection that worked resets the backoff, unless what fails is on this side.
                is_fresh_trouble = self._is_ready and not backs_off
                if is_fresh_trouble or down_since is None:
                    down_since = time.strftime("%H:%M:%S")
                failures = 0 if is_fresh_trouble else failures + 1
                if len(self.sources) > 1:  # another instance of the channel at once, then backing off
                    failed = self.source
                    self.source = self.sources[(self.sources.index(failed) + 1) % len(self.sources)]
                    if failures < len(self.sources):
                        self.on_state(f"{channel_url(failed)} failed ({reason}); trying {channel_url(self.source)}")
                        continue
                if time.monotonic() < restarting_until:  # back in a moment: said once, then retried quietly
                    if not restart_said:
                        self.on_state(f"{channel_url(self.source)} is restarting; resuming as soon as it answers")
                        restart_said = True
                    await asyncio.sleep(RESTART_RETRY_SECONDS)
                    continue
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                self.on_state(f"disconnected since {down_since} ({reason}); reconnecting in {delay:g} s")
                await asyncio.sleep(delay)

    _is_ready = False

    async def _stream(self, session: aiohttp.ClientSession) -> None:
        last = await self._resume_after()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", "Last-Event-ID": str(last or 0)}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with session.get(self._subscribe_url(), headers=headers) as response:
            if response.status >= 400:  # its error says why (a claim refused, say)
                raise RelayRefused(response.status, relay_error(await response.content.read(64 * 1024)))
            pending: deque[asyncio.Future[None]] = deque()
            try:
                await self._consume(read_events(response.content.iter_any(), self.max_event_bytes), pending, last)
            finally:
                # What was received is stored before the stream is let go, and every store's
                # outcome is taken: a failure is noted for the resume, none is left unretrieved.
                await asyncio.gather(*pending, return_exceptions=True)
                pending.clear()
            if self._store_failed is not None:
                raise self._store_failed

    async def _consume(self, events: AsyncIterator[ServerSentEvent], pending: deque[asyncio.Future[None]],
                       last: int | None) -> None:
        caught_up = 0
        is_live = False
        async for event in events:
            if self._store_failed is not None:
                raise self._store_failed
            if event.event == "ready":
                self._is_ready = True
                self.on_state(f"connected: {channel_url(self.source)} (resuming after #{last or 0})")
                continue
            if event.event in ("caught-up", "ping"):  # caught-up: ours, after the backlog
                while pending:
                    await pending.popleft()
                if not is_live:
                    self.on_state(f"caught up {caught_up} missed deliver{'y' if caught_up == 1 else 'ies'}; live")
                is_live = True
                continue
            if event.event == RESTART:
                raise RelayRestarting()
            if event.event == TOO_LARGE:
                self.on_state(f"event {event.id or '?'} is over {self.max_event_bytes} bytes (bodies over "
                              f"{self.max_body} bytes; listen --max-body): skipped, nothing stored")
                continue
            if event.event != "message" or not event.id:
                continue
            try:
                data = json.loads(event.data)
            except ValueError:
                self.on_state(f"sent an unreadable event {event.id}; skipped")
                continue
            # Stores are pipelined (the writer commits in arrival order, in shared
            # transactions); a bounded number is in flight, so a resume point is never ahead
            # of what is stored by more than that, and nothing is stored twice.
            try:
                delivery = delivery_from_event(data, event.id, self.sources[0], self.seal_key)
            except (KeyError, TypeError, ValueError, AttributeError):  # not our relay's shape, nor smee's
                self.on_state(f"sent an event {event.id} that is not a delivery; skipped")
                continue
            # Live, its forwards start while it is being stored (the relay keeps it until then);
            # a backlog is stored first, and its forwards come from the queue.
            pending.append(asyncio.ensure_future(self._store(delivery, event.id, send_at_once=is_live)))
            if len(pending) >= MAX_IN_FLIGHT:
                await pending.popleft()
            if not is_live:
                caught_up += 1

    async def _store(self, delivery: Delivery, event_id: str, send_at_once: bool) -> None:
        try:
            # The relay keeps the event until it is stored here, and a power cut only takes
            # the newest ones, which the subscription resumes before: no wait for the disk.
            await self.recorder.record(delivery, is_durable=False, send_at_once=send_at_once)
        except sqlite3.IntegrityError:
            self.duplicates += 1  # already stored (unique origin): a resent event
            return
        except Exception as exc:  # a full disk (StoreError), or a flaw: resumed before, never past it
            self._store_failed = exc
            failed = parse_number(event_id)
            if failed is not None:
                self._resume_cap = failed - 1 if self._resume_cap is None else min(self._resume_cap, failed - 1)
            raise
        self.stored += 1
