"""The durable forward queue of `listen --ack`: one row per delivery and target.

States: `pending` (waits for `next_at_us`), `done` (the target accepted it, or a manual
replay did), `dead` (out of tries, or the target answered 410), `cancelled` (by the user).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from hookinspect.values import format_time_us, mask_userinfo

_COLUMNS = "q.id, q.delivery_seq, q.target, q.tries, q.next_at_us, q.last_outcome, q.state"


@dataclass(frozen=True)
class QueueItem:
    id: int
    delivery_seq: int
    target: str
    tries: int
    next_at_us: int
    last_outcome: str | None
    state: str = "pending"

    def to_dict(self) -> dict[str, Any]:
        """The `queue --json` shape (documented in the README)."""
        return {"id": self.id, "seq": self.delivery_seq, "target": mask_userinfo(self.target), "state": self.state,
                "tries": self.tries, "next_at": format_time_us(self.next_at_us) if self.state == "pending" else None,
                "last_outcome": self.last_outcome}


@dataclass(frozen=True)
class QueueSnapshot:
    """What the forward worker needs for one look: what is due, when the next is, what is paused."""

    due: list[QueueItem]
    next_at_us: int | None  # the earliest pending item that is not due yet
    paused: frozenset[str]


class QueueTable:
    """The forward-queue part of a Store (see store/sqlite.py)."""

    execute: Callable[..., sqlite3.Cursor]  # the Store's
    transaction: Callable[[], AbstractContextManager[None]]  # the Store's

    def enqueue(self, seq: int, target: str, at_us: int) -> int:
        """Queue one send of delivery #seq; returns the item's id."""
        cursor = self.execute("INSERT INTO forward_queue (delivery_seq, target, next_at_us) VALUES (?,?,?)",
                              (seq, target, at_us))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def queue_snapshot(self, now_us: int, limit: int, ordered: bool, skip: frozenset[str] = frozenset()) -> QueueSnapshot:
        """Due items, earliest first (`ordered`: only each target's oldest pending one, if due),
        leaving out targets in `skip` (those that cannot take a send now: a down or busy one must not
        fill the look with items that cannot start, and hide another target's)."""
        leave_out = f" AND q.target NOT IN ({','.join('?' * len(skip))})" if skip else ""
        if ordered:
            rows = self.execute(
                f"""SELECT {_COLUMNS} FROM forward_queue q WHERE q.id IN
                    (SELECT min(id) FROM forward_queue WHERE state = 'pending' GROUP BY target)
                    AND q.next_at_us <= ? ORDER BY q.id""", (now_us,)).fetchall()
        else:
            rows = self.execute(
                f"""SELECT {_COLUMNS} FROM forward_queue q WHERE q.state = 'pending' AND q.next_at_us <= ?{leave_out}
                    ORDER BY q.next_at_us, q.id LIMIT ?""", (now_us, *sorted(skip), limit)).fetchall()
        later = self.execute("SELECT min(next_at_us) FROM forward_queue WHERE state = 'pending' AND next_at_us > ?",
                             (now_us,)).fetchone()[0]
        return QueueSnapshot([QueueItem(*row) for row in rows], later, self.paused_targets())

    def queue_update(self, item_id: int, state: str, tries: int, next_at_us: int, outcome: str | None) -> None:
        """A send's outcome on its item, if the item still waits: one cancelled or settled by a
        replay while it was being sent keeps that state."""
        self.execute("UPDATE forward_queue SET state = ?, tries = ?, next_at_us = ?, last_outcome = ? "
                     "WHERE id = ? AND state = 'pending'", (state, tries, next_at_us, outcome, item_id))

    def queue_counts(self) -> dict[str, int]:
        return dict(self.execute("SELECT state, count(*) FROM forward_queue GROUP BY state").fetchall())

    def queue_items(self, states: tuple[str, ...] = ("pending",), seqs: list[int] | None = None,
                    limit: int | None = None) -> list[QueueItem]:
        """Items in these states (of these deliveries), the next due first."""
        sql = f"SELECT {_COLUMNS} FROM forward_queue q WHERE q.state IN ({','.join('?' * len(states))})"
        params: list[Any] = list(states)
        if seqs is not None:
            sql += f" AND q.delivery_seq IN ({','.join('?' * len(seqs))})"
            params += seqs
        sql += " ORDER BY q.next_at_us, q.id" + (" LIMIT ?" if limit is not None else "")
        return [QueueItem(*row) for row in self.execute(sql, params + ([limit] if limit is not None else []))]

    def queue_retry(self, now_us: int, seqs: list[int] | None = None) -> int:
        """Pending and dead items (of these deliveries) become due now; returns how many."""
        where, params = _of_deliveries(seqs)
        return self.execute(f"UPDATE forward_queue SET state = 'pending', next_at_us = ? "
                            f"WHERE state IN ('pending', 'dead'){where}", [now_us, *params]).rowcount

    def queue_cancel(self, seqs: list[int] | None = None) -> int:
        """Pending items (of these deliveries) are not sent; returns how many."""
        where, params = _of_deliveries(seqs)
        return self.execute(f"UPDATE forward_queue SET state = 'cancelled', last_outcome = 'cancelled' "
                            f"WHERE state = 'pending'{where}", params).rowcount

    def queue_settle(self, seq: int, target: str, outcome: str) -> int:
        """A send outside the queue (a replay) reached `target`: its waiting items there are done."""
        return self.execute("UPDATE forward_queue SET state = 'done', last_outcome = ? "
                            "WHERE delivery_seq = ? AND target = ? AND state IN ('pending', 'dead')",
                            (outcome, seq, target)).rowcount

    def paused_targets(self) -> frozenset[str]:
        return frozenset(row[0] for row in self.execute("SELECT target FROM queue_paused"))

    def queue_pause(self, target: str, now_us: int) -> None:
        self.execute("INSERT OR IGNORE INTO queue_paused (target, since_us) VALUES (?, ?)", (target, now_us))

    def queue_resume(self, target: str) -> bool:
        return self.execute("DELETE FROM queue_paused WHERE target = ?", (target,)).rowcount > 0


def _of_deliveries(seqs: list[int] | None) -> tuple[str, list[Any]]:
    if seqs is None:
        return "", []
    return f" AND delivery_seq IN ({','.join('?' * len(seqs))})", list(seqs)
