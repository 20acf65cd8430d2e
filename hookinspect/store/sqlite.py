"""The live capture store: SQLite in WAL mode, one writer and any number of readers.

Bodies are BLOBs, byte-exact. The schema version lives in `PRAGMA user_version` and is
migrated on open; `PRAGMA application_id` marks the file as ours so that a foreign or
corrupt file is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookinspect.errors import NotFoundError, StoreError
from hookinspect.filters import DeliveryFilter
from hookinspect.model import (
    Attempt,
    Delivery,
    Headers,
    Response,
    SentRequest,
    format_time_us,
    summary_fields,
)

APPLICATION_ID = 0x484B494E  # "HKIN"
SQLITE_MAGIC = b"SQLite format 3\x00"

# Each entry upgrades the schema by one version; index + 1 is the version it produces.
# Never edit a released entry: append a new one (tests/data holds old stores to prove it).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        received_us INTEGER NOT NULL,
        remote_addr TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        query TEXT NOT NULL DEFAULT '',
        http_version TEXT NOT NULL DEFAULT '1.1',
        content_type TEXT,
        size INTEGER NOT NULL,
        source TEXT NOT NULL DEFAULT 'listen',
        provider TEXT,
        event_type TEXT,
        verdict TEXT,
        verdict_reason TEXT,
        content_hash TEXT,
        headers TEXT NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX deliveries_received ON deliveries(received_us);
    CREATE TABLE attempts (
        id TEXT PRIMARY KEY,
        delivery_seq INTEGER NOT NULL REFERENCES deliveries(seq) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        target_url TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        latency_ms REAL,
        status INTEGER,
        error_kind TEXT,
        error_message TEXT,
        request_method TEXT NOT NULL,
        request_url TEXT NOT NULL,
        request_headers TEXT NOT NULL,
        response_reason TEXT,
        response_headers TEXT,
        response_truncated INTEGER NOT NULL DEFAULT 0,
        request_body BLOB NOT NULL,
        response_body BLOB
    );
    CREATE INDEX attempts_delivery ON attempts(delivery_seq, started_us);
    """,
    # 2: the durable forward queue of `listen --ack`
    """
    CREATE TABLE forward_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_seq INTEGER NOT NULL REFERENCES deliveries(seq) ON DELETE CASCADE,
        target TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        tries INTEGER NOT NULL DEFAULT 0,
        next_at_us INTEGER NOT NULL,
        last_outcome TEXT
    );
    CREATE INDEX forward_queue_pending ON forward_queue(state, target, id);
    """,
    # 3: deliveries that came through a relay: where from (never stored twice), and a note
    """
    ALTER TABLE deliveries ADD COLUMN origin TEXT;
    ALTER TABLE deliveries ADD COLUMN note TEXT;
    CREATE UNIQUE INDEX deliveries_origin ON deliveries(origin) WHERE origin IS NOT NULL;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# Columns of a listing row: everything but the body, plus the latest attempt's outcome.
_ROW_COLUMNS = """
    d.seq, d.id, d.received_us, d.remote_addr, d.method, d.path, d.query, d.content_type,
    d.size, d.source, d.provider, d.event_type, d.verdict,
    (SELECT a.status FROM attempts a WHERE a.delivery_seq = d.seq ORDER BY a.started_us DESC LIMIT 1),
    (SELECT a.error_kind FROM attempts a WHERE a.delivery_seq = d.seq ORDER BY a.started_us DESC LIMIT 1),
    (SELECT a.latency_ms FROM attempts a WHERE a.delivery_seq = d.seq ORDER BY a.started_us DESC LIMIT 1)
"""
_DELIVERY_COLUMNS = (
    "seq", "id", "received_us", "remote_addr", "method", "path", "query", "http_version", "source",
    "provider", "event_type", "verdict", "verdict_reason", "headers", "body", "origin", "note",
)
_LAST_STATUS = "(SELECT a.status FROM attempts a WHERE a.delivery_seq = d.seq ORDER BY a.started_us DESC LIMIT 1)"
_LAST_ERROR = "(SELECT a.error_kind FROM attempts a WHERE a.delivery_seq = d.seq ORDER BY a.started_us DESC LIMIT 1)"
_HAS_ATTEMPT = "EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_seq = d.seq)"


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery without its body, for listings; `last_*` describe its latest attempt."""

    seq: int
    id: str
    received_us: int
    remote_addr: str | None
    method: str
    path: str
    query: str
    content_type: str | None
    size: int
    source: str
    provider: str | None
    event_type: str | None
    verdict: str | None
    last_status: int | None
    last_error: str | None
    last_latency_ms: float | None

    @property
    def received_at(self) -> str:
        return format_time_us(self.received_us)

    @property
    def last_outcome(self) -> str | None:
        if self.last_status is not None:
            return str(self.last_status)
        return self.last_error

    def to_dict(self) -> dict[str, Any]:
        """The `ls --json` shape (documented in the README)."""
        return {**summary_fields(self, self.content_type), "last_status": self.last_status,
                "last_error": self.last_error, "last_latency_ms": self.last_latency_ms}


@dataclass(frozen=True)
class QueueItem:
    id: int
    delivery_seq: int
    target: str
    tries: int
    next_at_us: int
    last_outcome: str | None


def _has_sqlite_header(path: Path) -> bool:
    """Only called once SQLite has refused the file, so no connection of ours holds locks on it."""
    with open(path, "rb") as fh:
        return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def default_store_path() -> Path:
    return Path(os.environ.get("HOOKINSPECT_STORE") or ".hookinspect/store.db")


_INSERT_COLUMNS = ("id", "received_us", "remote_addr", "method", "path", "query", "http_version", "content_type",
                   "size", "source", "provider", "event_type", "verdict", "verdict_reason", "content_hash", "headers",
                   "body", "origin", "note")
_INSERT_WIDTH = len(_INSERT_COLUMNS)
# Rows per INSERT statement. Each batch size gets its own prepared statement, and a prepared
# statement grows with its rows: 64 sizes cost ~5 MiB of memory, 256 would cost ~70 MiB.
_MAX_INSERT_ROWS = 64


@functools.cache
def _insert_statement(rows: int) -> str:
    one = "(" + ",".join("?" * _INSERT_WIDTH) + ")"
    return f"INSERT INTO deliveries ({', '.join(_INSERT_COLUMNS)}) VALUES " + ",".join([one] * rows)


def _headers_to_json(headers: Headers) -> str:
    # ensure_ascii keeps surrogate-escaped bytes representable in a TEXT column
    return json.dumps(headers.pairs(), ensure_ascii=True, separators=(",", ":"))


def _headers_from_json(text: str | None) -> Headers:
    return Headers((k, v) for k, v in json.loads(text or "[]"))


class Store:
    """A connection to one store file. Not thread-safe: one Store per thread."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self._depth = 0
        self._conn = self._open(create)
        # Rows per INSERT, within SQLite's bound-variable limit (999 in old builds).
        self._max_insert_rows = min(_MAX_INSERT_ROWS, self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _INSERT_WIDTH)

    # -- opening -----------------------------------------------------------------------

    def _open(self, create: bool) -> sqlite3.Connection:
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(f"no store at {self.path}", "run `hookinspect listen` to capture deliveries, or pass --store")
        if exists:
            if self.path.is_dir():
                raise StoreError(f"{self.path} is a directory, not a store file")
            # No plain open() of the file here: closing any descriptor of it drops every POSIX lock
            # this process holds on it, including those of a live SQLite connection (the receiver's
            # writer), and another process would then checkpoint and delete the WAL under it.
            # SQLite refuses a file that is not a database on the first read and writes nothing.
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create store directory {self.path.parent}: {exc.strerror}") from None
        try:
            # The statement cache holds an INSERT for every batch size (see insert_deliveries).
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0,
                                   cached_statements=_MAX_INSERT_ROWS + 64)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "not a database" in str(exc) and not _has_sqlite_header(self.path):
                raise StoreError(f"{self.path} is not a hookinspect store (not an SQLite file); it was left untouched") from None
            raise StoreError(f"{self.path} is not a readable hookinspect store ({exc}); it was left untouched") from None
        except StoreError:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 10000")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id != 0 or tables:
                raise StoreError(f"{self.path} is an SQLite database of another program; it was left untouched")
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer hookinspect (schema {version}, this one knows {SCHEMA_VERSION})",
                "upgrade hookinspect",
            )
        # WAL lets readers (UI, ls) run while the receiver writes. NORMAL sync in WAL mode
        # keeps every commit across a crash or kill -9 of the process (not across power loss).
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if version < SCHEMA_VERSION:
            self._migrate(conn, version)

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, tuple(params))
        except sqlite3.OperationalError as exc:
            raise StoreError(f"store {self.path}: {exc}") from None

    # -- deliveries ----------------------------------------------------------------------

    def insert_delivery(self, delivery: Delivery) -> int:
        """Store a delivery and return (and set) its sequence number."""
        return self.insert_deliveries([delivery])[0]

    def insert_deliveries(self, deliveries: list[Delivery], content_hashes: list[str | None] | None = None) -> list[int]:
        """Store several deliveries atomically; sets and returns their sequence numbers.

        The content hash (for skipping duplicates on import) is left empty unless given:
        `content_hashes()` fills it in when an import first needs it, not on the capture path.
        """
        hashes = content_hashes or [None] * len(deliveries)
        values: list[Any] = []
        for delivery, digest in zip(deliveries, hashes, strict=True):
            values += (
                delivery.id, delivery.received_us, delivery.remote_addr, delivery.method,
                delivery.path, delivery.query, delivery.http_version,
                delivery.headers.get("content-type"), len(delivery.body), delivery.source,
                delivery.provider, delivery.event_type, delivery.verdict, delivery.verdict_reason,
                digest, _headers_to_json(delivery.headers), delivery.body, delivery.origin, delivery.note,
            )
        # Multi-row statements rather than executemany: SQLite runs each statement with the GIL
        # released, and the receiver's writer thread waits to get it back after every one.
        total = len(deliveries)
        chunks = [min(self._max_insert_rows, total - start) for start in range(0, total, self._max_insert_rows)]
        seqs: list[int] = []
        # One statement is a transaction of its own; several need BEGIN and COMMIT around them.
        with self.transaction() if len(chunks) > 1 else contextlib.nullcontext():
            start = 0
            for size in chunks:
                try:
                    cursor = self._conn.execute(_insert_statement(size), values[start * _INSERT_WIDTH:(start + size) * _INSERT_WIDTH])
                except sqlite3.OperationalError as exc:
                    raise StoreError(f"store {self.path}: {exc}") from None
                # AUTOINCREMENT numbers the rows of one statement consecutively, after the highest
                # number ever used (so numbers of deleted deliveries are never reused).
                last = cursor.lastrowid
                assert last is not None
                seqs.extend(range(last - size + 1, last + 1))
                start += size
        for delivery, seq in zip(deliveries, seqs, strict=True):
            delivery.seq = seq
        return seqs

    def set_verdict(self, seq: int, provider: str | None, event_type: str | None,
                    verdict: str | None, reason: str | None) -> None:
        self.execute(
            "UPDATE deliveries SET provider = ?, event_type = ?, verdict = ?, verdict_reason = ? WHERE seq = ?",
            (provider, event_type, verdict, reason, seq),
        )

    def latest_origin_id(self, prefix: str) -> int | None:
        """The highest remote event id stored from one relay channel (`prefix` + id), to resume after."""
        best = None
        for (origin,) in self.execute("SELECT origin FROM deliveries WHERE origin LIKE ? ESCAPE '\\'",
                                      (prefix.replace("%", "\\%").replace("_", "\\_") + "%",)):
            tail = origin[len(prefix):]
            if tail.isdigit():
                best = max(best or 0, int(tail))
        return best

    def has_origin(self, origin: str) -> bool:
        return self.execute("SELECT 1 FROM deliveries WHERE origin = ?", (origin,)).fetchone() is not None

    def content_hashes(self) -> set[str]:
        """Every stored content hash: imports skip duplicates with one scan, so inserts pay no index.

        Captures are stored without one (it would cost the receiver a hash per request), so the
        missing ones are computed and saved here, once.
        """
        missing = self.execute("SELECT seq FROM deliveries WHERE content_hash IS NULL").fetchall()
        if missing:
            with self.transaction():
                for (seq,) in missing:
                    digest = self.get(seq).content_hash()
                    self.execute("UPDATE deliveries SET content_hash = ? WHERE seq = ?", (digest, seq))
        return {row[0] for row in self.execute("SELECT content_hash FROM deliveries WHERE content_hash IS NOT NULL")}

    def get(self, ref: int | str) -> Delivery:
        """A delivery by sequence number (int or digits) or id; NotFoundError if absent."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = self.execute(f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE seq = ?", (int(ref),)).fetchone()
            label = f"#{ref}"
        else:
            row = self.execute(
                f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE id = ? OR id LIKE ? LIMIT 1",
                (ref, f"{ref}%"),
            ).fetchone()
            label = f"id {ref}"
        if row is None:
            raise NotFoundError(f"no delivery {label} in {self.path}", "`hookinspect ls` lists what is stored")
        return Store._delivery_from_row(row)

    @staticmethod
    def _delivery_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Delivery:
        rec = dict(zip(_DELIVERY_COLUMNS, row, strict=True))
        return Delivery(
            seq=rec["seq"], id=rec["id"], received_us=rec["received_us"], remote_addr=rec["remote_addr"],
            method=rec["method"], path=rec["path"], query=rec["query"], http_version=rec["http_version"],
            source=rec["source"], provider=rec["provider"], event_type=rec["event_type"],
            verdict=rec["verdict"], verdict_reason=rec["verdict_reason"],
            headers=_headers_from_json(rec["headers"]), body=bytes(rec["body"]),
            origin=rec["origin"], note=rec["note"],
        )

    def _where(self, flt: DeliveryFilter | None) -> tuple[str, list[Any]]:
        if flt is None:
            return "", []
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(template: str, values: list[Any]) -> None:
            if values:
                clauses.append("(" + " OR ".join([template] * len(values)) + ")")
                for value in values:
                    params.extend([value] * template.count("?"))

        any_of("d.method = ?", flt.methods)
        any_of("d.path GLOB ?", flt.path_globs)
        any_of("d.provider = ?", flt.providers)
        any_of("d.event_type GLOB ?", flt.event_globs)
        any_of("d.verdict = ?", flt.verdicts)
        ct_globs = [ct if any(c in ct for c in "*?[") else ct + "*" for ct in flt.content_types]
        any_of("lower(d.content_type) GLOB ?", ct_globs)
        for text in flt.texts:
            clauses.append("(instr(d.path, ?) > 0 OR instr(d.body, ?) > 0)")
            params.extend([text, text.encode("utf-8")])
        if flt.statuses:
            parts = []
            for status in flt.statuses:
                if status.endswith("xx"):
                    low = int(status[0]) * 100
                    parts.append(f"({_LAST_STATUS} BETWEEN {low} AND {low + 99})")
                elif status.isdigit():
                    parts.append(f"({_LAST_STATUS} = {int(status)})")
                elif status == "ok":
                    parts.append(f"({_LAST_STATUS} BETWEEN 200 AND 299)")
                elif status == "failed":
                    parts.append(f"({_HAS_ATTEMPT} AND coalesce({_LAST_STATUS} NOT BETWEEN 200 AND 299, 1))")
                elif status == "error":
                    parts.append(f"({_LAST_ERROR} IS NOT NULL)")
                elif status == "none":
                    parts.append(f"(NOT {_HAS_ATTEMPT})")
            clauses.append("(" + " OR ".join(parts) + ")")
        if flt.since_us is not None:
            clauses.append("d.received_us >= ?")
            params.append(flt.since_us)
        if flt.until_us is not None:
            clauses.append("d.received_us <= ?")
            params.append(flt.until_us)
        if not clauses:
            return "", []
        return " AND " + " AND ".join(clauses), params

    def list(self, flt: DeliveryFilter | None = None, *, limit: int | None = 50, offset: int = 0,
             before_seq: int | None = None, oldest_first: bool = False) -> list[DeliveryRow]:
        """Deliveries newest first (or oldest first), paged by `limit`/`offset` or `before_seq`."""
        where, params = self._where(flt)
        if before_seq is not None:
            where += " AND d.seq < ?" if not oldest_first else " AND d.seq > ?"
            params.append(before_seq)
        order = "ASC" if oldest_first else "DESC"
        if flt is not None and flt.json_tests:
            return self._list_with_json_tests(flt, where, params, order, limit, offset)
        sql = f"SELECT {_ROW_COLUMNS} FROM deliveries d WHERE 1=1{where} ORDER BY d.seq {order}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [DeliveryRow(*row) for row in self.execute(sql, params)]

    def _list_with_json_tests(self, flt: DeliveryFilter, where: str, params: list[Any], order: str,
                              limit: int | None, offset: int) -> list[DeliveryRow]:
        # JSON tests need the body, so they run in Python over rows the SQL part selected.
        out: list[DeliveryRow] = []
        skipped = 0
        sql = f"SELECT d.seq FROM deliveries d WHERE 1=1{where} ORDER BY d.seq {order}"
        for (seq,) in self.execute(sql, params).fetchall():
            delivery = self.get(seq)
            document = delivery.json()
            if all(test.matches(document) for test in flt.json_tests):
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(self.row(seq))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def row(self, seq: int) -> DeliveryRow:
        found = self.execute(f"SELECT {_ROW_COLUMNS} FROM deliveries d WHERE d.seq = ?", (seq,)).fetchone()
        if found is None:
            raise NotFoundError(f"no delivery #{seq} in {self.path}")
        return DeliveryRow(*found)

    def count(self, flt: DeliveryFilter | None = None) -> int:
        if flt is not None and flt.json_tests:
            return len(self.list(flt, limit=None))
        where, params = self._where(flt)
        return self.execute(f"SELECT count(*) FROM deliveries d WHERE 1=1{where}", params).fetchone()[0]

    def follow(self, after_seq: int, limit: int = 1000) -> list[DeliveryRow]:
        """Deliveries newer than `after_seq`, oldest first: what a live reader has not seen yet."""
        return self.list(None, limit=limit, before_seq=after_seq, oldest_first=True)

    def max_seq(self) -> int:
        return self.execute("SELECT coalesce(max(seq), 0) FROM deliveries").fetchone()[0]

    def seqs(self, flt: DeliveryFilter | None = None) -> list[int]:
        """Sequence numbers matching a filter, oldest first."""
        return [row.seq for row in self.list(flt, limit=None, oldest_first=True)]

    def delete(self, seqs: Iterable[int]) -> int:
        seqs = list(seqs)
        with self.transaction():
            deleted = 0
            for seq in seqs:
                deleted += self.execute("DELETE FROM deliveries WHERE seq = ?", (seq,)).rowcount
        return deleted

    def clear(self) -> int:
        with self.transaction():
            return self.execute("DELETE FROM deliveries").rowcount

    # -- attempts ------------------------------------------------------------------------

    def add_attempt(self, attempt: Attempt) -> None:
        resp = attempt.response
        self.execute(
            """INSERT INTO attempts (id, delivery_seq, kind, target_url, started_us, latency_ms, status,
                   error_kind, error_message, request_method, request_url, request_headers,
                   response_reason, response_headers, response_truncated, request_body, response_body)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                attempt.id, attempt.delivery_seq, attempt.kind, attempt.target_url, attempt.started_us,
                attempt.latency_ms, resp.status if resp else None, attempt.error_kind,
                attempt.error_message, attempt.request.method, attempt.request.url,
                _headers_to_json(attempt.request.headers), resp.reason if resp else None,
                _headers_to_json(resp.headers) if resp else None, int(attempt.response_truncated),
                attempt.request.body, resp.body if resp else None,
            ),
        )

    def attempts(self, seq: int) -> list[Attempt]:
        """Every attempt of a delivery, oldest first, numbered from 1."""
        cur = self.execute("SELECT * FROM attempts WHERE delivery_seq = ? ORDER BY started_us, rowid", (seq,))
        names = [d[0] for d in cur.description]
        out = []
        for number, row in enumerate(cur.fetchall(), start=1):
            rec = dict(zip(names, row, strict=True))
            response = None
            if rec["status"] is not None:
                response = Response(
                    status=rec["status"], reason=rec["response_reason"] or "",
                    headers=_headers_from_json(rec["response_headers"]), body=bytes(rec["response_body"] or b""),
                )
            out.append(Attempt(
                id=rec["id"], number=number, delivery_seq=rec["delivery_seq"], kind=rec["kind"],
                target_url=rec["target_url"], started_us=rec["started_us"], latency_ms=rec["latency_ms"],
                error_kind=rec["error_kind"], error_message=rec["error_message"],
                response_truncated=bool(rec["response_truncated"]),
                request=SentRequest(method=rec["request_method"], url=rec["request_url"],
                                    headers=_headers_from_json(rec["request_headers"]),
                                    body=bytes(rec["request_body"])),
                response=response,
            ))
        return out

    # -- forward queue (listen --ack) ------------------------------------------------------

    def enqueue(self, seq: int, target: str, at_us: int) -> None:
        self.execute("INSERT INTO forward_queue (delivery_seq, target, next_at_us) VALUES (?,?,?)", (seq, target, at_us))

    def queue_heads(self) -> list[QueueItem]:
        """For each target, its oldest pending item: deliveries go out in order per target."""
        rows = self.execute(
            """SELECT q.id, q.delivery_seq, q.target, q.tries, q.next_at_us, q.last_outcome FROM forward_queue q
               WHERE q.id IN (SELECT min(id) FROM forward_queue WHERE state = 'pending' GROUP BY target)"""
        ).fetchall()
        return [QueueItem(*row) for row in rows]

    def queue_update(self, item_id: int, state: str, tries: int, next_at_us: int, outcome: str | None) -> None:
        self.execute("UPDATE forward_queue SET state = ?, tries = ?, next_at_us = ?, last_outcome = ? WHERE id = ?",
                     (state, tries, next_at_us, outcome, item_id))

    def queue_counts(self) -> dict[str, int]:
        return dict(self.execute("SELECT state, count(*) FROM forward_queue GROUP BY state").fetchall())

    def last_attempt(self, seq: int) -> Attempt | None:
        found = self.attempts(seq)
        return found[-1] if found else None
