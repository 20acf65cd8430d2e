"""One owner per store: the process that runs `listen` on it holds an OS lock beside the file.

A second `listen` on the same store would write it too and work its forward queue a second
time (every queued delivery sent twice), so it is refused, naming the PID that owns it.
Readers (`ls`, `show`, `ui`) never take the lock and are never blocked. The lock is an
flock on `<store>.lock`, not on the store itself (SQLite's own POSIX locks must not be
touched); forked `--workers` share it, and the kernel drops it when the last of them exits,
even after kill -9.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from hookinspect.errors import StoreBusyError, StoreError


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


@contextlib.contextmanager
def owning(store: Path) -> Iterator[None]:
    """Hold the store's owner lock for the block; StoreBusyError if another process holds it."""
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StoreBusyError(f"{store} is in use by another `hookinspect listen` (PID {owner})",
                                 "stop it, or give this one its own --store") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock (forked workers keep it until they exit)
