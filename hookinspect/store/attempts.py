"""Attempts: every send of a delivery (forward, queue, replay, check, diff), oldest first."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from hookinspect.model import FOREIGN_KINDS, Attempt, Headers, Response, SentRequest

# The one definition of "latest": the newest start, and of two that started in the same
# microsecond, the one stored last. Listings, filters and `last_attempt` all use it.
LATEST_FIRST = "started_us DESC, rowid DESC"


def latest_attempt(column: str) -> str:
    """SQL for one column of the latest attempt of the delivery aliased `d`."""
    return (f"(SELECT a.{column} FROM attempts a WHERE a.delivery_seq = d.seq "
            f"ORDER BY a.{LATEST_FIRST.replace(', ', ', a.')} LIMIT 1)")


def headers_to_json(headers: Headers) -> str:
    # ensure_ascii keeps surrogate-escaped bytes representable in a TEXT column
    return json.dumps(headers.pairs(), ensure_ascii=True, separators=(",", ":"))


def headers_from_json(text: str | None) -> Headers:
    return Headers((k, v) for k, v in json.loads(text or "[]"))


_COLUMNS = ("id", "delivery_seq", "kind", "target_url", "started_us", "latency_ms", "status", "error_kind",
            "error_message", "request_method", "request_url", "request_headers", "response_reason",
            "response_headers", "response_truncated", "request_body", "response_body")
_INSERT = f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM attempts"


def _attempt_from_row(row: Iterable[Any], number: int | None) -> Attempt:
    rec = dict(zip(_COLUMNS, row, strict=True))
    response = None
    if rec["status"] is not None:
        response = Response(status=rec["status"], reason=rec["response_reason"] or "",
                            headers=headers_from_json(rec["response_headers"]), body=bytes(rec["response_body"] or b""))
    return Attempt(
        id=rec["id"], number=number, delivery_seq=rec["delivery_seq"], kind=rec["kind"],
        target_url=rec["target_url"], started_us=rec["started_us"], latency_ms=rec["latency_ms"],
        error_kind=rec["error_kind"], error_message=rec["error_message"],
        response_truncated=bool(rec["response_truncated"]),
        request=SentRequest(method=rec["request_method"], url=rec["request_url"],
                            headers=headers_from_json(rec["request_headers"]), body=bytes(rec["request_body"])),
        response=response,
    )


class AttemptTable:
    """The attempts part of a Store (see store/sqlite.py)."""

    execute: Callable[..., sqlite3.Cursor]  # the Store's

    def add_attempt(self, attempt: Attempt) -> None:
        resp = attempt.response
        self.execute(_INSERT, (
            attempt.id, attempt.delivery_seq, attempt.kind, attempt.target_url, attempt.started_us,
            attempt.latency_ms, resp.status if resp else None, attempt.error_kind,
            attempt.error_message, attempt.request.method, attempt.request.url,
            headers_to_json(attempt.request.headers), resp.reason if resp else None,
            headers_to_json(resp.headers) if resp else None, int(attempt.response_truncated),
            attempt.request.body, resp.body if resp else None,
        ))

    def attempts(self, seq: int) -> list[Attempt]:
        """Every attempt of a delivery, oldest first, numbered from 1."""
        rows = self.execute(f"{_SELECT} WHERE delivery_seq = ? ORDER BY started_us, rowid", (seq,)).fetchall()
        return [_attempt_from_row(row, number) for number, row in enumerate(rows, start=1)]

    def last_attempt(self, seq: int, *, own: bool = False) -> Attempt | None:
        """The latest attempt of a delivery (numbered like in `attempts`), or None; `own`: the
        latest one made here, not brought by an import or a recording."""
        mine = f" AND kind NOT IN {FOREIGN_KINDS!r}" if own else ""
        row = self.execute(f"{_SELECT} WHERE delivery_seq = ?{mine} ORDER BY {LATEST_FIRST} LIMIT 1", (seq,)).fetchone()
        if row is None:
            return None
        count = self.execute("SELECT count(*) FROM attempts WHERE delivery_seq = ?", (seq,)).fetchone()[0]
        return _attempt_from_row(row, count)

    def last_attempt_mark(self) -> int:
        """A number that grows with every attempt stored (0 for none): compare two to see new ones."""
        return self.execute("SELECT coalesce(max(rowid), 0) FROM attempts").fetchone()[0]

    def seqs_with_attempts_after(self, mark: int, limit: int = 1000) -> list[int]:
        """Deliveries that got an attempt since `mark` (a `last_attempt_mark`), at most `limit`."""
        return [row[0] for row in self.execute("SELECT DISTINCT delivery_seq FROM attempts WHERE rowid > ? LIMIT ?",
                                               (mark, limit))]
