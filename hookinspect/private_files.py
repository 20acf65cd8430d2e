"""Every file and directory hookinspect writes is its owner's alone, from the first byte.

Captured deliveries carry `Authorization` headers, signing secrets and customers' data, so a
store, a relay's data, a key, an export, a JUnit report or a saved body is created 0600 and
its directory 0700, whatever the umask (a mode given at creation can only be narrowed by the
umask, never widened). A file is written next to its destination and renamed over it, so an
existing file that others could read is replaced, not written into with its old mode.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parents 0700; an existing directory is left as it is."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(directory, DIRECTORY_MODE)


def create_private(path: Path) -> bool:
    """Create an empty file 0600 unless it exists; True when this call made it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    except FileExistsError:
        return False
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` as a new 0600 file (through a temporary file renamed over it);
    OSError as the filesystem raised it."""
    make_private_dir(path.parent)
    # A new name each time, created exclusively: nothing planted beside the file is written through.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def narrow_to_owner(path: Path) -> None:
    """An existing file of ours that others can read (written by an older version) becomes 0600."""
    with contextlib.suppress(FileNotFoundError):
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, FILE_MODE)


def is_private(path: Path) -> bool:
    """Nobody but the owner can read or enter it."""
    return path.stat().st_mode & 0o077 == 0
