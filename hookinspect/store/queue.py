"""The durable forward queue of `listen --ack`: one row per delivery and target."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class QueueItem:
    id: int
    delivery_seq: int
    target: str
    tries: int
    next_at_us: int
    last_outcome: str | None


class QueueTable:
    """The forward-queue part of a Store (see store/sqlite.py)."""

    execute: Callable[..., sqlite3.Cursor]  # the Store's

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
