"""Where the relay keeps channels and deliveries. The server talks only to RelayStorage: SQLite
here for one machine, Redis Streams (relay/redis_storage.py) for several instances."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hookinspect.errors import StoreError
from hookinspect.private_files import create_private, make_private_dir, narrow_to_owner
from hookinspect.relay.limits import LocalRateLimiter, RateLimiter
from hookinspect.store.schema import SYNCHRONOUS, store_error

# 16 URL-safe characters, like smee's channel ids, but from a CSPRNG: ~95 bits, unguessable.
CHANNEL_ID_BYTES = 12


@dataclass(frozen=True)
class Channel:
    id: str
    is_public: bool
    token_hash: str | None
    created_at: float
    # A sealed channel's public key (X25519, base64): events are stored and sent encrypted to it.
    seal_key: str | None = None

    def accepts_token(self, token: str | None) -> bool:
        if self.is_public:
            return True
        if not token or self.token_hash is None:
            return False
        return hmac.compare_digest(hash_token(token), self.token_hash)


@dataclass(frozen=True)
class Claim:
    """What one subscriber of a channel takes: deliveries matching `filter` (the filter
    language), or (`is_default`) those no other subscriber claims."""

    subscriber: str
    filter: str
    is_default: bool
    seen_at: float


@dataclass(frozen=True)
class RelayEvent:
    """One request that reached a channel, exactly as it arrived."""

    id: int  # increases per relay; SSE `id:` and Last-Event-ID
    channel: str
    received_us: int
    method: str
    path: str  # below the channel, with a leading "/" ("/" when posted to the channel itself)
    query: str
    headers: list[tuple[str, str]]
    body: bytes  # a sealed event's ciphertext (method, path, query and headers empty)
    sealed: bool = False

    @property
    def size(self) -> int:
        """Bytes it holds in memory, about: body, headers and the request line."""
        return (len(self.body) + sum(len(name) + len(value) + 4 for name, value in self.headers)
                + len(self.path) + len(self.query) + len(self.method))


# What a store says of its own state: (event, message, level=...), as RelayLog.state takes it.
StateCallback = Callable[..., None]


class ChannelLimitReached(Exception):
    """The relay holds as many channels as its operator allows."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_channel_id() -> str:
    return secrets.token_urlsafe(CHANNEL_ID_BYTES)


def new_channel(is_public: bool, seal_key: str | None) -> tuple[Channel, str | None]:
    """A channel not yet stored, and its subscribe token (None for a public one)."""
    token = None if is_public else secrets.token_urlsafe(24)
    return Channel(new_channel_id(), is_public, hash_token(token) if token else None, time.time(), seal_key), token


class RelayStorage(ABC):
    # True for a store that other relay processes append to as well (a shared database): the
    # server then reads live events back from it instead of serving them from its own memory.
    shared = False

    @abstractmethod
    def create_channel(self, is_public: bool, max_channels: int | None = None,
                       seal_key: str | None = None) -> tuple[Channel, str | None]:
        """A new channel and its subscribe token (None for a public channel); ChannelLimitReached
        when `max_channels` exist already."""

    @abstractmethod
    def set_claim(self, channel_id: str, claim: Claim) -> None:
        """Record (or refresh) a subscriber's claim; it outlives the subscriber's connection."""

    @abstractmethod
    def claims(self, channel_id: str) -> list[Claim]: ...

    @abstractmethod
    def delete_claim(self, channel_id: str, subscriber: str) -> bool:
        """Forget a subscriber's claim; False when it had none."""

    @abstractmethod
    def channel(self, channel_id: str) -> Channel | None: ...

    @abstractmethod
    def append(self, event: RelayEvent) -> int:
        """Store an event durably; returns its id."""

    def append_many(self, events: list[RelayEvent]) -> list[int]:
        """Store several events durably, in order (backends override this with one transaction)."""
        return [self.append(event) for event in events]

    def append_now(self, events: list[RelayEvent]) -> list[int] | None:
        """`append_many` in the caller's thread (the event loop) when that costs less than a hop
        to a thread and back; None when it cannot be done at once (then the caller uses a thread)."""
        return None

    # Told of each round trip to a server (its operation) for the relay's metrics.
    on_round_trip: Callable[[str], None] = staticmethod(lambda _operation: None)

    # Whether what append_now committed still needs `sync` before its senders are answered.
    syncs_after_append_now = False
    # Bytes committed between two calls of `checkpoint`, for a backend that keeps a log.
    checkpoint_every: int | None = None

    def sync(self) -> None:
        """Make what append_now committed durable (called in a thread)."""
        return  # most backends are durable once append_now returns

    def checkpoint(self) -> None:
        """Move what commits wrote to a log into the main file, if the backend has one (in a thread)."""
        return  # most keep no such log

    @abstractmethod
    def events_after(self, channel_id: str, after_id: int, limit: int = 500) -> list[RelayEvent]: ...

    @abstractmethod
    def count_after(self, channel_id: str, after_id: int, cap: int) -> int:
        """How many events of a channel come after `after_id`, counted up to `cap`."""

    @abstractmethod
    def last_event_id(self, channel_id: str, skip: int = 0) -> int:
        """The newest event id of a channel, or (`skip`) the id just before its `skip` newest
        events (0 when there is none)."""

    @abstractmethod
    def prune(self, keep_per_channel: int, max_age_seconds: float) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    def rate_limiter(self) -> RateLimiter:
        """The limiter whose buckets this store's relay instances share (here: this process)."""
        return LocalRateLimiter()

    async def watch(self, notify: Callable[[str], None], resync: Callable[[], None],
                    on_state: StateCallback = lambda _event, _message, level="warning": None) -> None:
        """For a shared store: call `notify(channel)` when another instance stores events. One
        process alone learns of its own events without it."""
        return None


class SqliteRelayStorage(RelayStorage):
    """The relay's own SQLite file (WAL); one connection, guarded by a lock."""

    # How far event numbering jumps after a stop without close (a crash, kill -9, a power cut):
    # more than the events a power cut can take back (a checkpoint's worth of log between syncs).
    ID_GAP_AFTER_UNCLEAN_STOP = 1_000_000
    checkpoint_every = 4 * 1024 * 1024

    def __init__(self, directory: str | Path, durability: str = "power") -> None:
        directory = Path(directory)
        self.durability = durability
        self.syncs_after_append_now = durability == "power"
        try:
            # Senders' headers and bodies: the database, its WAL and shm (which SQLite creates with
            # the database's mode) are the operator's alone.
            make_private_dir(directory)
            if not create_private(directory / "relay.db"):
                for name in ("relay.db", "relay.db-wal", "relay.db-shm"):
                    narrow_to_owner(directory / name)
            self._conn = sqlite3.connect(directory / "relay.db", isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            # power: a sender's 200 means the event reached the disk (an fsync per commit, shared
            # by the deliveries of a burst); process: it survives a crash of the relay only.
            self._conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[durability]}")
            # Commits can run on the event loop (append_now), so none of them may turn into a
            # checkpoint (fsyncs, megabytes copied): `checkpoint` does that on its own connection.
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn.execute("PRAGMA busy_timeout = 10000")
            self._conn.executescript("""
                CREATE TABLE IF NOT EXISTS channels (id TEXT PRIMARY KEY, public INTEGER NOT NULL,
                    token_hash TEXT, created_at REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,
                    received_us INTEGER NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, query TEXT NOT NULL,
                    headers TEXT NOT NULL, body BLOB NOT NULL);
                CREATE INDEX IF NOT EXISTS events_channel ON events(channel, id);
                CREATE TABLE IF NOT EXISTS claims (channel TEXT NOT NULL, subscriber TEXT NOT NULL,
                    filter TEXT NOT NULL, is_default INTEGER NOT NULL, seen_at REAL NOT NULL,
                    PRIMARY KEY (channel, subscriber));
                CREATE TABLE IF NOT EXISTS relay_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """)
            # Columns added after the first release: an older relay.db gains them in place.
            for table, column, kind in (("channels", "seal_key", "TEXT"), ("events", "sealed", "INTEGER NOT NULL DEFAULT 0")):
                names = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
                if column not in names:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self._mark_open()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open relay data in {directory}: {exc}") from None
        self.path = directory / "relay.db"
        self._lock = threading.Lock()
        self._checkpointer: sqlite3.Connection | None = None

    def _mark_open(self) -> None:
        """Note (durably) that the relay runs; after a stop without close, number past what may be lost.

        A subscriber may hold an event whose commit a power cut then took back (streams go out
        before the disk is synced, and without fsyncs at all under `process`); were its number
        given to another event, that subscriber, resuming after it, would never get that one."""
        row = self._conn.execute("SELECT value FROM relay_state WHERE key = 'open'").fetchone()
        if row is not None and row[0] == "1":
            self._conn.execute("UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'events'",
                               (self.ID_GAP_AFTER_UNCLEAN_STOP,))
        with self._synchronous("FULL"):  # this mark must outlive a power cut in any mode
            self._conn.execute("INSERT OR REPLACE INTO relay_state VALUES ('open', '1')")

    @contextlib.contextmanager
    def _synchronous(self, level: str) -> Iterator[None]:
        """Commits made inside sync to `level`, then to the durability's again."""
        self._conn.execute(f"PRAGMA synchronous = {level}")
        try:
            yield
        finally:
            self._conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.durability]}")

    def create_channel(self, is_public: bool, max_channels: int | None = None,
                       seal_key: str | None = None) -> tuple[Channel, str | None]:
        channel, token = new_channel(is_public, seal_key)
        with self._lock:
            if max_channels is not None and \
                    self._conn.execute("SELECT COUNT(*) FROM channels").fetchone()[0] >= max_channels:
                raise ChannelLimitReached()
            self._conn.execute("INSERT INTO channels (id, public, token_hash, created_at, seal_key) VALUES (?,?,?,?,?)",
                               (channel.id, int(is_public), channel.token_hash, channel.created_at, seal_key))
        return channel, token

    def channel(self, channel_id: str) -> Channel | None:
        with self._lock:
            row = self._conn.execute("SELECT id, public, token_hash, created_at, seal_key FROM channels WHERE id = ?",
                                     (channel_id,)).fetchone()
        return Channel(row[0], bool(row[1]), row[2], row[3], row[4]) if row else None

    def set_claim(self, channel_id: str, claim: Claim) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?)",
                               (channel_id, claim.subscriber, claim.filter, int(claim.is_default), claim.seen_at))

    def claims(self, channel_id: str) -> list[Claim]:
        with self._lock:
            rows = self._conn.execute("SELECT subscriber, filter, is_default, seen_at FROM claims WHERE channel = ? "
                                      "ORDER BY subscriber", (channel_id,)).fetchall()
        return [Claim(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def delete_claim(self, channel_id: str, subscriber: str) -> bool:
        with self._lock:
            return self._conn.execute("DELETE FROM claims WHERE channel = ? AND subscriber = ?",
                                      (channel_id, subscriber)).rowcount > 0

    def append(self, event: RelayEvent) -> int:
        return self.append_many([event])[0]

    def append_many(self, events: list[RelayEvent]) -> list[int]:
        with self._lock:
            return self._append_locked(events)

    def append_now(self, events: list[RelayEvent]) -> list[int] | None:
        # A connection busy in a thread (a backlog read, pruning) would stall the loop: not now.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            # On the loop the commit only writes the log; `sync` (in a thread) takes it to the disk.
            with self._synchronous("NORMAL"):
                return self._append_locked(events)
        finally:
            self._lock.release()

    def sync(self) -> None:
        if not self.syncs_after_append_now:
            return
        try:  # what a FULL commit does in WAL mode: the log synced (any descriptor of it will do)
            log = os.open(self.path.with_name(self.path.name + "-wal"), os.O_RDONLY)
            try:
                os.fdatasync(log)
            finally:
                os.close(log)
        except OSError as exc:
            raise StoreError(f"cannot sync {self.path} to the disk: {exc.strerror or exc}") from None

    def _append_locked(self, events: list[RelayEvent]) -> list[int]:
        # Multi-row statements: SQLite runs each one with the GIL released, and the thread that
        # runs this waits to get the GIL back after each, so one per row would cost a wait per row.
        rows_per_statement = max(1, self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8)
        ids: list[int] = []
        chunks = [events[i:i + rows_per_statement] for i in range(0, len(events), rows_per_statement)]
        try:
            if len(chunks) > 1:  # one statement is a transaction of its own
                self._conn.execute("BEGIN IMMEDIATE")
            for chunk in chunks:
                values: list[object] = []
                for e in chunk:
                    values += (e.channel, e.received_us, e.method, e.path, e.query,
                               json.dumps(e.headers, ensure_ascii=True), e.body, int(e.sealed))
                cursor = self._conn.execute(
                    "INSERT INTO events (channel, received_us, method, path, query, headers, body, sealed) VALUES "
                    + ",".join(["(?,?,?,?,?,?,?,?)"] * len(chunk)), values)
                # AUTOINCREMENT numbers the rows of one statement consecutively.
                last = cursor.lastrowid
                assert last is not None
                ids.extend(range(last - len(chunk) + 1, last + 1))
            if len(chunks) > 1:
                self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):  # a full disk: one line, and the sender gets 503
                raise store_error(exc, self.path) from None
            raise
        return ids

    def checkpoint(self) -> None:
        # Its own connection, outside the lock: commits go on meanwhile (PASSIVE waits for no one).
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from None

    def events_after(self, channel_id: str, after_id: int, limit: int = 500) -> list[RelayEvent]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, channel, received_us, method, path, query, headers, body, sealed FROM events "
                "WHERE channel = ? AND id > ? ORDER BY id LIMIT ?", (channel_id, after_id, limit)).fetchall()
        return [RelayEvent(r[0], r[1], r[2], r[3], r[4], r[5], [tuple(p) for p in json.loads(r[6])], bytes(r[7]),  # type: ignore[misc]
                           bool(r[8])) for r in rows]

    def count_after(self, channel_id: str, after_id: int, cap: int) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM (SELECT 1 FROM events WHERE channel = ? AND id > ? LIMIT ?)",
                                      (channel_id, after_id, cap)).fetchone()[0]

    def last_event_id(self, channel_id: str, skip: int = 0) -> int:
        with self._lock:
            return self._conn.execute("SELECT coalesce((SELECT id FROM events WHERE channel = ? ORDER BY id DESC "
                                      "LIMIT 1 OFFSET ?), 0)", (channel_id, skip)).fetchone()[0]

    def prune(self, keep_per_channel: int, max_age_seconds: float) -> int:
        cutoff = int((time.time() - max_age_seconds) * 1_000_000)
        with self._lock:
            aged = self._conn.execute("DELETE FROM events WHERE received_us < ?", (cutoff,)).rowcount
            extra = self._conn.execute(
                """DELETE FROM events WHERE id IN (
                       SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY channel ORDER BY id DESC) AS n FROM events)
                       WHERE n > ?)""", (keep_per_channel,)).rowcount
        return aged + extra

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        with contextlib.suppress(sqlite3.Error), self._synchronous("FULL"):
            self._conn.execute("INSERT OR REPLACE INTO relay_state VALUES ('open', '0')")  # stopped cleanly
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave a small file behind, not a long log
        self._conn.close()
