"""Where the relay keeps channels and deliveries. The server talks only to RelayStorage, so a
shared backend (PostgreSQL, Redis Streams) can replace SQLite without touching the protocol."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from hookinspect.errors import StoreError

# 16 URL-safe characters, like smee's channel ids, but from a CSPRNG: ~95 bits, unguessable.
CHANNEL_ID_BYTES = 12


@dataclass(frozen=True)
class Channel:
    id: str
    is_public: bool
    token_hash: str | None
    created_at: float

    def accepts_token(self, token: str | None) -> bool:
        if self.is_public:
            return True
        if not token or self.token_hash is None:
            return False
        return hmac.compare_digest(hash_token(token), self.token_hash)


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
    body: bytes

    @property
    def size(self) -> int:
        """Bytes it holds in memory, about: body, headers and the request line."""
        return (len(self.body) + sum(len(name) + len(value) + 4 for name, value in self.headers)
                + len(self.path) + len(self.query) + len(self.method))


class ChannelLimitReached(Exception):
    """The relay holds as many channels as its operator allows."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_channel_id() -> str:
    return secrets.token_urlsafe(CHANNEL_ID_BYTES)


class RelayStorage(ABC):
    # True for a store that other relay processes append to as well (a shared database): the
    # server then reads live events back from it instead of serving them from its own memory.
    shared = False

    @abstractmethod
    def create_channel(self, is_public: bool, max_channels: int | None = None) -> tuple[Channel, str | None]:
        """A new channel and its subscribe token (None for a public channel); ChannelLimitReached
        when `max_channels` exist already."""

    @abstractmethod
    def channel(self, channel_id: str) -> Channel | None: ...

    @abstractmethod
    def append(self, event: RelayEvent) -> int:
        """Store an event durably; returns its id."""

    def append_many(self, events: list[RelayEvent]) -> list[int]:
        """Store several events durably, in order (backends override this with one transaction)."""
        return [self.append(event) for event in events]

    @abstractmethod
    def events_after(self, channel_id: str, after_id: int, limit: int = 500) -> list[RelayEvent]: ...

    @abstractmethod
    def last_event_id(self, channel_id: str, skip: int = 0) -> int:
        """The newest event id of a channel, or (`skip`) the id just before its `skip` newest
        events (0 when there is none)."""

    @abstractmethod
    def prune(self, keep_per_channel: int, max_age_seconds: float) -> int: ...

    @abstractmethod
    def close(self) -> None: ...


class SqliteRelayStorage(RelayStorage):
    """The relay's own SQLite file (WAL); one connection, guarded by a lock."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(directory / "relay.db", isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.executescript("""
                CREATE TABLE IF NOT EXISTS channels (id TEXT PRIMARY KEY, public INTEGER NOT NULL,
                    token_hash TEXT, created_at REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,
                    received_us INTEGER NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, query TEXT NOT NULL,
                    headers TEXT NOT NULL, body BLOB NOT NULL);
                CREATE INDEX IF NOT EXISTS events_channel ON events(channel, id);
            """)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open relay data in {directory}: {exc}") from None
        self._lock = threading.Lock()

    def create_channel(self, is_public: bool, max_channels: int | None = None) -> tuple[Channel, str | None]:
        token = None if is_public else secrets.token_urlsafe(24)
        channel = Channel(new_channel_id(), is_public, hash_token(token) if token else None, time.time())
        with self._lock:
            if max_channels is not None and \
                    self._conn.execute("SELECT COUNT(*) FROM channels").fetchone()[0] >= max_channels:
                raise ChannelLimitReached()
            self._conn.execute("INSERT INTO channels VALUES (?,?,?,?)",
                               (channel.id, int(is_public), channel.token_hash, channel.created_at))
        return channel, token

    def channel(self, channel_id: str) -> Channel | None:
        with self._lock:
            row = self._conn.execute("SELECT id, public, token_hash, created_at FROM channels WHERE id = ?",
                                     (channel_id,)).fetchone()
        return Channel(row[0], bool(row[1]), row[2], row[3]) if row else None

    def append(self, event: RelayEvent) -> int:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO events (channel, received_us, method, path, query, headers, body) VALUES (?,?,?,?,?,?,?)",
                (event.channel, event.received_us, event.method, event.path, event.query,
                 json.dumps(event.headers, ensure_ascii=True), event.body))
        return cur.lastrowid  # type: ignore[return-value]

    def append_many(self, events: list[RelayEvent]) -> list[int]:
        # Multi-row statements: SQLite runs each one with the GIL released, and the thread that
        # runs this waits to get the GIL back after each, so one per row would cost a wait per row.
        rows_per_statement = max(1, self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 7)
        ids: list[int] = []
        with self._lock:
            chunks = [events[i:i + rows_per_statement] for i in range(0, len(events), rows_per_statement)]
            if len(chunks) > 1:  # one statement is a transaction of its own
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                for chunk in chunks:
                    values: list[object] = []
                    for e in chunk:
                        values += (e.channel, e.received_us, e.method, e.path, e.query,
                                   json.dumps(e.headers, ensure_ascii=True), e.body)
                    cursor = self._conn.execute(
                        "INSERT INTO events (channel, received_us, method, path, query, headers, body) VALUES "
                        + ",".join(["(?,?,?,?,?,?,?)"] * len(chunk)), values)
                    # AUTOINCREMENT numbers the rows of one statement consecutively.
                    last = cursor.lastrowid
                    assert last is not None
                    ids.extend(range(last - len(chunk) + 1, last + 1))
                if len(chunks) > 1:
                    self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return ids

    def events_after(self, channel_id: str, after_id: int, limit: int = 500) -> list[RelayEvent]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, channel, received_us, method, path, query, headers, body FROM events "
                "WHERE channel = ? AND id > ? ORDER BY id LIMIT ?", (channel_id, after_id, limit)).fetchall()
        return [RelayEvent(r[0], r[1], r[2], r[3], r[4], r[5], [tuple(p) for p in json.loads(r[6])], bytes(r[7]))  # type: ignore[misc]
                for r in rows]

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
        self._conn.close()
