"""The live capture store: SQLite in WAL mode, one writer and any number of readers.

A Store is one connection; its parts live beside it, one concern each: `schema` (migrations,
opening), `query` (filters to SQL), `deliveries`, `attempts`, `queue` and `origins`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hookinspect.store.attempts import AttemptTable
from hookinspect.store.deliveries import DeliveryRow, DeliveryTable, insert_rows_limit
from hookinspect.store.origins import OriginTable
from hookinspect.store.queue import QueueItem, QueueTable
from hookinspect.store.rejected import RejectedTable
from hookinspect.store.schema import (
    SCHEMA_VERSION,
    SYNCHRONOUS,
    check_intact,
    open_connection,
    store_error,
)

__all__ = ["SCHEMA_VERSION", "DeliveryRow", "QueueItem", "Store", "default_store_path"]


def default_store_path() -> Path:
    return Path(os.environ.get("HOOKINSPECT_STORE") or ".hookinspect/store.db")


class Store(DeliveryTable, AttemptTable, QueueTable, OriginTable, RejectedTable):
    """A connection to one store file. Not thread-safe: one thread uses it at a time."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, durability: str = "power") -> None:
        self.path = Path(path)
        self._depth = 0
        self._conn = open_connection(self.path, create=create, durability=durability)
        self._synchronous = SYNCHRONOUS[durability]
        self._max_insert_rows = insert_rows_limit(self._conn)

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
            self._conn.execute("COMMIT")
        except BaseException:
            # Also after a failed COMMIT (disk full, I/O error), which can leave the transaction
            # open: without this ROLLBACK every later write on this connection would fail.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, tuple(params))
        except sqlite3.IntegrityError:
            raise  # a constraint its caller handles (a relay event stored twice)
        except sqlite3.DatabaseError as exc:
            raise store_error(exc, self.path) from None

    def check_intact(self) -> None:
        """StoreError if the file has damaged pages (see schema.check_intact)."""
        check_intact(self._conn, self.path)

    def set_synchronous(self, level: str) -> None:
        """FULL (fsync at COMMIT) or NORMAL; a no-op when it is already set."""
        if level != self._synchronous:
            self._conn.execute(f"PRAGMA synchronous = {level}")
            self._synchronous = level

    def data_version(self) -> int:
        """Changes whenever another connection (thread or process) commits: a cheap "anything new?"."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0]
