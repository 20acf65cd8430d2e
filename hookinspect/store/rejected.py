"""Rejected requests: what was refused before it could be stored, kept for `ls --rejected`.

Only the newest ones are kept (a stranger's flood of bad requests must not fill the disk),
and only the start of each request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from hookinspect.model import REJECTED_BODY_LIMIT, REJECTED_HEAD_LIMIT, Rejection
from hookinspect.values import MAX_NUMBER

KEEP_REJECTED = 1000

_COLUMNS = "id, at_us, remote_addr, method, target, status, reason, head, body, unrecorded_after"


class RejectedTable:
    """The rejected-request part of a Store (see store/sqlite.py)."""

    execute: Callable[..., sqlite3.Cursor]  # the Store's

    def add_rejection(self, rejection: Rejection, keep: int = KEEP_REJECTED) -> int:
        """Keep one rejection, and drop the oldest beyond `keep`."""
        cursor = self.execute(
            "INSERT INTO rejected (at_us, remote_addr, method, target, status, reason, head, body, unrecorded_after)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (rejection.at_us, rejection.remote_addr, rejection.method, rejection.target, rejection.status,
             rejection.reason, rejection.head[:REJECTED_HEAD_LIMIT], rejection.body[:REJECTED_BODY_LIMIT],
             rejection.unrecorded_after))
        rowid = cursor.lastrowid
        assert rowid is not None
        self.execute("DELETE FROM rejected WHERE id <= ?", (rowid - keep,))
        rejection.id = rowid
        return rowid

    def count_unrecorded(self, count: int) -> None:
        """Rejections that were only counted, after the newest one kept."""
        self.execute("UPDATE rejected SET unrecorded_after = unrecorded_after + ? "
                     "WHERE id = (SELECT MAX(id) FROM rejected)", (count,))

    def rejections(self, limit: int | None = None, since_us: int | None = None) -> list[Rejection]:
        """Newest first."""
        where, args = ("WHERE at_us >= ?", [since_us]) if since_us is not None else ("", [])
        rows = self.execute(f"SELECT {_COLUMNS} FROM rejected {where} ORDER BY id DESC LIMIT ?",
                            (*args, -1 if limit is None else min(limit, MAX_NUMBER)))
        return [Rejection(id=row[0], at_us=row[1], remote_addr=row[2], method=row[3], target=row[4], status=row[5],
                          reason=row[6], head=bytes(row[7]), body=bytes(row[8]), unrecorded_after=row[9])
                for row in rows]

    def count_rejections(self) -> int:
        return self.execute("SELECT COUNT(*) + COALESCE(SUM(unrecorded_after), 0) FROM rejected").fetchone()[0]
