"""One owner per store: the process that runs `listen` on it holds an OS lock beside the file.

A second `listen` on the same store would write it too and work its forward queue a second
time (every queued delivery sent twice), so it is refused, naming the PID that owns it.
Readers (`ls`, `show`, `ui`) never take the lock and are never blocked. The lock is an
flock on `<store>.lock`, not on the store itself (SQLite's own POSIX locks must not be
touched); forked `--workers` share it, and the kernel drops it when the last of them exits,
even after kill -9.

Whatever path reaches the file: the lock beside it is taken at its real path (symlinks
resolved), and a second lock is named by the file's device and inode in a directory of this
user's, so a hard link under another name is refused as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hookinspect.errors import StoreBusyError, StoreError
from hookinspect.private_files import create_private, make_private_dir


def lock_path(store: Path) -> Path:
    real = Path(os.path.realpath(store))
    return real.with_name(real.name + ".lock")


def inode_lock_path(store: Path) -> Path:
    """A lock named by what the file is, not where: the same for every link to it."""
    info = os.stat(store)
    directory = Path(tempfile.gettempdir()) / f"hookinspect-{os.getuid()}" / "owners"
    make_private_dir(directory)
    if directory.parent.stat().st_uid != os.getuid():  # somebody else made it first: not ours to trust
        raise StoreError(f"{directory.parent} belongs to another user", "remove it, or set TMPDIR")
    return directory / f"{info.st_dev}-{info.st_ino}.lock"


@contextlib.contextmanager
def owning(store: Path) -> Iterator[None]:
    """Hold the store's owner locks for the block; StoreBusyError if another process holds one."""
    real = Path(os.path.realpath(store))
    try:
        create_private(real)  # so that it has an inode to name its lock by
        by_inode = inode_lock_path(real)
    except OSError as exc:
        raise StoreError(f"cannot lock {store}: {exc.strerror}") from None
    with _locked(lock_path(store), store), _locked(by_inode, store):
        yield


@contextlib.contextmanager
def _locked(path: Path, store: Path) -> Iterator[None]:
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
