"""The store file's schema: versioned migrations, and opening a connection that checks it.

The schema version lives in `PRAGMA user_version` and is migrated on open; `PRAGMA
application_id` marks the file as ours so that a foreign or corrupt file is refused, never
overwritten.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from hookinspect.errors import StoreError, StoreFullError
from hookinspect.private_files import create_private, make_private_dir

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
    # 4: a queue that schedules each item on its own (due items by time), shows per delivery,
    # and pauses per target
    """
    CREATE INDEX forward_queue_due ON forward_queue(state, next_at_us);
    CREATE INDEX forward_queue_delivery ON forward_queue(delivery_seq);
    CREATE TABLE queue_paused (target TEXT PRIMARY KEY, since_us INTEGER NOT NULL);
    """,
    # 5: requests refused before they could be stored (over a limit, unreadable): ls --rejected
    """
    CREATE TABLE rejected (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_us INTEGER NOT NULL,
        remote_addr TEXT,
        method TEXT NOT NULL,
        target TEXT NOT NULL,
        status INTEGER NOT NULL,
        reason TEXT NOT NULL,
        head BLOB NOT NULL,
        body BLOB NOT NULL,
        unrecorded_after INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 6: trailer fields sent after a chunked body (JSON pairs, like headers; NULL when none)
    """
    ALTER TABLE deliveries ADD COLUMN trailers TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
# SQLite's result codes (the low byte of an extended code) that say what a failure means to a user.
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB, SQLITE_IOERR, SQLITE_READONLY = 11, 13, 26, 10, 8

# synchronous=FULL: a COMMIT returns after the WAL is fsynced, so an acknowledged delivery
# survives power loss (group commit shares one fsync among a burst). NORMAL survives a crash
# or kill -9 of the process but not power loss: `listen --durability process`.
SYNCHRONOUS = {"power": "FULL", "process": "NORMAL"}


def store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """SQLite's failure as one clear line: a full disk, a corrupt file, I/O, read-only, or what SQLite said."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == SQLITE_FULL:
        return StoreFullError(f"the disk holding {path} is full; nothing more can be stored until space is freed")
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreError(f"{path} is corrupt ({exc}); it is not written to",
                          "move it aside and start a new store; `sqlite3 FILE .recover` may save its contents")
    if primary == SQLITE_IOERR:
        return StoreError(f"I/O error on {path} ({exc})")
    if primary == SQLITE_READONLY:
        return StoreError(f"{path} is read-only ({exc})", "check the permissions of the file and its directory")
    return StoreError(f"store {path}: {exc}")


# The statement cache holds an INSERT for every batch size (see deliveries.MAX_INSERT_ROWS) plus the rest.
CACHED_STATEMENTS = 128


def _has_sqlite_header(path: Path) -> bool:
    """Only called once SQLite has refused the file, so no connection of ours holds locks on it."""
    with open(path, "rb") as fh:
        return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def open_connection(path: Path, *, create: bool, durability: str = "power") -> sqlite3.Connection:
    """A connection to a checked, migrated store file; StoreError says why one cannot be had."""
    exists = path.exists()
    if not exists and not create:
        raise StoreError(f"no store at {path}", "run `hookinspect listen` to capture deliveries, or pass --store")
    if exists:
        if path.is_dir():
            raise StoreError(f"{path} is a directory, not a store file")
        # No plain open() of the file here: closing any descriptor of it drops every POSIX lock
        # this process holds on it, including those of a live SQLite connection (the receiver's
        # writer), and another process would then checkpoint and delete the WAL under it.
        # SQLite refuses a file that is not a database on the first read and writes nothing.
    else:
        _create_private(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0,
                               cached_statements=CACHED_STATEMENTS)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from None
    try:
        _prepare_when_free(conn, path, SYNCHRONOUS[durability])
    except sqlite3.DatabaseError as exc:
        conn.close()
        if "not a database" in str(exc) and not _has_sqlite_header(path):
            raise StoreError(f"{path} is not a hookinspect store (not an SQLite file); it was left untouched") from None
        raise StoreError(f"{path} is not a readable hookinspect store ({exc}); it was left untouched") from None
    except StoreError:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    """A new store file readable by its owner only (it holds Authorization headers), in a 0700 directory.

    SQLite gives the WAL and shared-memory files the permissions of the database file.
    """
    try:
        make_private_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot create store directory {path.parent}: {exc.strerror}") from None
    try:
        create_private(path)
    except OSError as exc:
        raise StoreError(f"cannot create store {path}: {exc.strerror}") from None


def check_writable(path: Path) -> None:
    """StoreError now, with one line, if the store (or its directory, where the WAL lives) cannot be written."""
    for target, what in ((path, "file"), (path.parent, "directory")):
        if target.exists() and not os.access(target, os.W_OK):
            raise StoreError(f"the store {what} {target} is read-only; nothing could be stored",
                             "fix its permissions, or pass --store PATH")


def check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """StoreError if SQLite finds damaged pages (PRAGMA quick_check): a corrupt store is never written to."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise store_error(exc, path) from None
    if problems != ["ok"]:
        raise StoreError(f"{path} is corrupt ({problems[0]}); it is not written to",
                         "move it aside and start a new store; `sqlite3 FILE .recover` may save its contents")


def _prepare_when_free(conn: sqlite3.Connection, path: Path, synchronous: str) -> None:
    """_prepare, again while another process holds the new store (two opening it at once: one
    switching it to WAL is refused at once, without SQLite's busy wait), for up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            _prepare(conn, path, synchronous)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # the other process's creation takes milliseconds


def _prepare(conn: sqlite3.Connection, path: Path, synchronous: str) -> None:
    conn.execute("PRAGMA busy_timeout = 10000")
    # One statement, one snapshot: read one at a time, a store another process is creating
    # could show its tables without its id yet, and pass for a database of another program.
    app_id, version, tables = conn.execute(
        "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version), "
        "(SELECT count(*) FROM sqlite_master)").fetchone()
    if app_id != APPLICATION_ID:
        if app_id != 0 or tables:
            raise StoreError(f"{path} is an SQLite database of another program; it was left untouched")
    elif version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer hookinspect (schema {version}, this one knows {SCHEMA_VERSION})",
            "upgrade hookinspect",
        )
    # WAL lets readers (UI, ls) run while the receiver writes.
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    if version < SCHEMA_VERSION:
        _migrate(conn)


def _migrate(conn: sqlite3.Connection) -> None:
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
