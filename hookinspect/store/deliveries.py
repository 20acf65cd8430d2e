"""Deliveries: insert (many rows per statement), read, list with filters, delete."""

from __future__ import annotations

import contextlib
import functools
import operator
import sqlite3
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookinspect.errors import NotFoundError, ScanStopped
from hookinspect.formats.filters import DeliveryFilter
from hookinspect.model import Delivery, Headers, summary_fields
from hookinspect.store.attempts import headers_from_json, headers_to_json, latest_attempt
from hookinspect.store.query import where_clause
from hookinspect.store.schema import store_error
from hookinspect.values import MAX_NUMBER, format_time_us, parse_number

# Columns of a listing row: everything but the body, plus the latest attempt's outcome.
_ROW_COLUMNS = f"""
    d.seq, d.id, d.received_us, d.remote_addr, d.method, d.path, d.query, d.content_type,
    d.size, d.source, d.provider, d.event_type, d.verdict,
    {latest_attempt("status")}, {latest_attempt("error_kind")}, {latest_attempt("latency_ms")}
"""
_DELIVERY_COLUMNS = (
    "seq", "id", "received_us", "remote_addr", "method", "path", "query", "http_version", "source",
    "provider", "event_type", "verdict", "verdict_reason", "headers", "body", "origin", "note", "trailers",
)
_INSERT_COLUMNS = ("id", "received_us", "remote_addr", "method", "path", "query", "http_version", "content_type",
                   "size", "source", "provider", "event_type", "verdict", "verdict_reason", "content_hash", "headers",
                   "body", "origin", "note", "trailers")
_INSERT_WIDTH = len(_INSERT_COLUMNS)
# Rows per INSERT statement. Each batch size gets its own prepared statement, and a prepared
# statement grows with its rows: 64 sizes cost ~5 MiB of memory, 256 would cost ~70 MiB.
MAX_INSERT_ROWS = 64


def insert_rows_limit(conn: sqlite3.Connection) -> int:
    """Rows per INSERT on this connection, within SQLite's bound-variable limit (999 in old builds)."""
    return min(MAX_INSERT_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _INSERT_WIDTH)


@functools.cache
def _insert_statement(rows: int) -> str:
    one = "(" + ",".join("?" * _INSERT_WIDTH) + ")"
    return f"INSERT INTO deliveries ({', '.join(_INSERT_COLUMNS)}) VALUES " + ",".join([one] * rows)


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
    def target(self) -> str:
        """Path and query, as the sender asked for them."""
        return self.path + (f"?{self.query}" if self.query else "")

    @property
    def last_outcome(self) -> str | None:
        if self.last_status is not None:
            return str(self.last_status)
        return self.last_error

    def to_dict(self) -> dict[str, Any]:
        """The `ls --json` shape (documented in the README)."""
        return {**summary_fields(self, self.content_type), "last_status": self.last_status,
                "last_error": self.last_error, "last_latency_ms": self.last_latency_ms}


def _delivery_from_row(row: Iterable[Any]) -> Delivery:
    rec = dict(zip(_DELIVERY_COLUMNS, row, strict=True))
    return Delivery(
        seq=rec["seq"], id=rec["id"], received_us=rec["received_us"], remote_addr=rec["remote_addr"],
        method=rec["method"], path=rec["path"], query=rec["query"], http_version=rec["http_version"],
        source=rec["source"], provider=rec["provider"], event_type=rec["event_type"],
        verdict=rec["verdict"], verdict_reason=rec["verdict_reason"],
        headers=headers_from_json(rec["headers"]), body=bytes(rec["body"]),
        origin=rec["origin"], note=rec["note"],
        trailers=headers_from_json(rec["trailers"]) if rec["trailers"] else Headers(),
    )


class DeliveryTable:
    """The deliveries part of a Store (see store/sqlite.py)."""

    path: Path
    _conn: sqlite3.Connection
    _max_insert_rows: int
    execute: Callable[..., sqlite3.Cursor]  # the Store's
    transaction: Callable[[], AbstractContextManager[None]]  # the Store's

    def insert_delivery(self, delivery: Delivery) -> int:
        """Store a delivery and return (and set) its sequence number."""
        return self.insert_deliveries([delivery])[0]

    def insert_deliveries(self, deliveries: list[Delivery], content_hashes: list[str | None] | None = None) -> list[int]:
        """Store several deliveries atomically; sets and returns their sequence numbers.

        The content hash (for skipping duplicates on import) is left empty unless given:
        `identities()` fills it in when an import first needs it, not on the capture path.
        """
        hashes = content_hashes or [None] * len(deliveries)
        values: list[Any] = []
        for delivery, digest in zip(deliveries, hashes, strict=True):
            values += (
                delivery.id, delivery.received_us, delivery.remote_addr, delivery.method,
                delivery.path, delivery.query, delivery.http_version,
                delivery.headers.get("content-type"), len(delivery.body), delivery.source,
                delivery.provider, delivery.event_type, delivery.verdict, delivery.verdict_reason,
                digest, headers_to_json(delivery.headers), delivery.body, delivery.origin, delivery.note,
                headers_to_json(delivery.trailers) if delivery.trailers else None,
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
                except sqlite3.IntegrityError:
                    raise  # a relay event stored twice: its intake skips it
                except sqlite3.DatabaseError as exc:
                    raise store_error(exc, self.path) from None
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

    def identities(self) -> tuple[set[str], set[tuple[str, int]]]:
        """Every stored id, and every (content hash, arrival time): what an import checks for duplicates.

        Captures are stored without a content hash (it would cost the receiver a hash per
        request), so the missing ones are computed and saved here, once.
        """
        missing = self.execute("SELECT seq FROM deliveries WHERE content_hash IS NULL").fetchall()
        if missing:
            with self.transaction():
                for (seq,) in missing:
                    digest = self.get(seq).content_hash()
                    self.execute("UPDATE deliveries SET content_hash = ? WHERE seq = ?", (digest, seq))
        rows = self.execute("SELECT id, content_hash, received_us FROM deliveries").fetchall()
        return {row[0] for row in rows}, {(row[1], row[2]) for row in rows}

    def get(self, ref: int | str) -> Delivery:
        """A delivery by sequence number (int or digits) or id; NotFoundError if absent."""
        seq = ref if isinstance(ref, int) else parse_number(ref)
        if seq is not None:
            row = None if seq > MAX_NUMBER else self.execute(
                f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE seq = ?", (seq,)).fetchone()
            label = f"#{ref}"
        else:
            row = self.execute(
                f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE id = ? OR id LIKE ? LIMIT 1",
                (ref, f"{ref}%"),
            ).fetchone()
            label = f"id {ref}"
        if row is None:
            raise NotFoundError(f"no delivery {label} in {self.path}", "`hookinspect ls` lists what is stored")
        return _delivery_from_row(row)

    def get_many(self, seqs: list[int]) -> list[Delivery]:
        """The deliveries with these numbers that exist, in number order."""
        if not seqs:
            return []
        rows = self.execute(f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE seq IN "
                            f"({','.join('?' * len(seqs))}) ORDER BY seq", seqs).fetchall()
        return [_delivery_from_row(row) for row in rows]

    def list(self, flt: DeliveryFilter | None = None, *, limit: int | None = 50, offset: int = 0,
             before_seq: int | None = None, oldest_first: bool = False,
             stop: Callable[[], bool] | None = None) -> list[DeliveryRow]:
        """Deliveries newest first (or oldest first), paged by `limit`/`offset` or `before_seq`.
        A filter that reads bodies asks `stop()` before each one and raises ScanStopped when it
        says so (a deadline passed, the client went away, the server is closing)."""
        # More than SQLite's INTEGER holds means "all of them" (and would raise OverflowError).
        limit = None if limit is None else min(limit, MAX_NUMBER)
        offset = min(offset, MAX_NUMBER)
        where, params = where_clause(flt)
        if before_seq is not None:
            where += " AND d.seq < ?" if not oldest_first else " AND d.seq > ?"
            params.append(before_seq)
        order = "ASC" if oldest_first else "DESC"
        if flt is not None and flt.reads_bodies:
            return self._list_reading_bodies(flt, where, params, order, limit, offset, stop)
        sql = f"SELECT {_ROW_COLUMNS} FROM deliveries d WHERE 1=1{where} ORDER BY d.seq {order}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [DeliveryRow(*row) for row in self.execute(sql, params)]

    def _list_reading_bodies(self, flt: DeliveryFilter, where: str, params: list[Any], order: str,
                             limit: int | None, offset: int,
                             stop: Callable[[], bool] | None) -> list[DeliveryRow]:
        # JSON tests and text search need the decoded body, so they run in Python over rows the SQL part selected.
        out: list[int] = []
        skipped = 0
        for chunk in self._body_matches(flt, where, params, order, stop=stop):
            for seq in chunk:
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(seq)
            if limit is not None and len(out) >= limit:
                del out[limit:]
                break
        rows = {row.seq: row for row in self._rows_of(out)}
        return [rows[seq] for seq in out if seq in rows]

    def _body_matches(self, flt: DeliveryFilter, where: str, params: list[Any], order: str,
                      chunk: int = 500, stop: Callable[[], bool] | None = None) -> Iterator[list[int]]:
        """Numbers of the deliveries the SQL part selected whose decoded body passes the text and
        JSON tests, a chunk at a time."""
        cursor = self._conn.execute(f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries d WHERE 1=1{where} "
                                    f"ORDER BY d.seq {order}", params)
        while rows := cursor.fetchmany(chunk):
            matches = []
            for row in rows:
                if stop is not None and stop():
                    raise ScanStopped("the filter stopped reading bodies before it was done",
                                      "narrow it with since:, path: or event: so it reads fewer")
                delivery = _delivery_from_row(row)
                document = delivery.json() if flt.json_tests else None
                if flt.body_matches(delivery.path, delivery.decoded().data if flt.texts else b"", document):
                    matches.append(delivery.seq)
            yield matches

    def scan_seqs(self, flt: DeliveryFilter | None = None, *, upto: int | None = None,
                  chunk: int = 2000) -> Iterator[Sequence[int]]:
        """Numbers of the matching deliveries up to `upto`, newest first, a chunk at a time (some
        chunks may be empty while a JSON filter reads bodies): a list fills as they come, and a
        caller that stops iterating stops the scan."""
        where, params = where_clause(flt)
        if flt is not None and flt.reads_bodies:
            if upto is not None:
                where += " AND d.seq <= ?"
                params.append(upto)
            yield from self._body_matches(flt, where, params, "DESC")
            return
        # One row per chunk, the numbers joined by SQLite: a thread reading a million numbers
        # this way takes the GIL a few dozen times instead of once per row (a UI beside it does
        # not slow it down, nor it the UI). The one bound on seq keeps each chunk a seek.
        below = upto + 1 if upto is not None else self.max_seq() + 1
        while True:
            (joined,) = self.execute(f"SELECT group_concat(seq) FROM (SELECT d.seq FROM deliveries d WHERE d.seq < ?{where} "
                                     f"ORDER BY d.seq DESC LIMIT ?)", [below, *params, chunk]).fetchone()
            if not joined:
                return
            seqs = array("q", map(int, joined.split(",")))
            if not all(map(operator.gt, seqs, seqs[1:])):  # group_concat's order is not promised (it is kept in practice)
                seqs = array("q", sorted(seqs, reverse=True))
            yield seqs
            if len(seqs) < chunk:
                return
            below = seqs[-1]

    def _rows_of(self, seqs: list[int]) -> list[DeliveryRow]:
        if not seqs:
            return []
        rows: list[DeliveryRow] = []
        for start in range(0, len(seqs), 500):  # under SQLite's limit on parameters
            part = seqs[start:start + 500]
            rows += [DeliveryRow(*row) for row in self.execute(
                f"SELECT {_ROW_COLUMNS} FROM deliveries d WHERE d.seq IN ({','.join('?' * len(part))})", part)]
        return rows

    def rows(self, seqs: list[int]) -> dict[int, DeliveryRow]:
        """The listing rows of these deliveries that still exist, by number."""
        return {row.seq: row for row in self._rows_of(list(seqs))}

    def previous_of_event(self, delivery: Delivery) -> DeliveryRow | None:
        """The newest delivery before this one with the same event type (of any event, if it has none)."""
        same_event = DeliveryFilter(event_globs=[delivery.event_type]) if delivery.event_type else None
        earlier = self.list(same_event, limit=1, before_seq=delivery.seq)
        return earlier[0] if earlier else None

    def row(self, seq: int) -> DeliveryRow:
        found = self.execute(f"SELECT {_ROW_COLUMNS} FROM deliveries d WHERE d.seq = ?", (seq,)).fetchone()
        if found is None:
            raise NotFoundError(f"no delivery #{seq} in {self.path}")
        return DeliveryRow(*found)

    def count(self, flt: DeliveryFilter | None = None) -> int:
        where, params = where_clause(flt)
        if flt is not None and flt.reads_bodies:
            return sum(len(chunk) for chunk in self._body_matches(flt, where, params, "DESC"))
        return self.execute(f"SELECT count(*) FROM deliveries d WHERE 1=1{where}", params).fetchone()[0]

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
