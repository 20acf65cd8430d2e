"""Values as people type and read them: delivery numbers, times, ids, and URLs (their request
forms, and how one is shown with its password masked). The floor: no hookinspect imports."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

# SQLite's INTEGER is 64 bits: a bigger number, from a user or a stranger, raises OverflowError.
MAX_NUMBER = 2**63 - 1


def parse_number(text: str) -> int | None:
    """`text` as a delivery or event number (ASCII digits, within SQLite's INTEGER), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_NUMBER)):
        return None
    number = int(text)
    return number if number <= MAX_NUMBER else None


def now_us() -> int:
    return time.time_ns() // 1000


def format_time_us(us: int) -> str:
    """ISO 8601 UTC with microseconds: `2026-11-28T15:58:43.123456Z`."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time_us(text: str) -> int:
    """ISO 8601 (UTC unless it says otherwise, `Z` allowed) -> epoch µs; ValueError if it is not one."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


def new_id() -> str:
    """32 hex digits, time-ordered like UUIDv7: 48 bits of milliseconds, then 80 random bits.

    Time order keeps the store's unique index append-only, so inserts stay cheap as it grows.
    Ids are identifiers, not secrets: a seeded PRNG avoids a system call per capture.
    """
    return f"{time.time_ns() // 1_000_000:012x}{_ids.getrandbits(80):020x}"


_ids = random.Random(os.urandom(16))
# A forked child would otherwise repeat its parent's ids from the fork on.
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))


def is_absolute_form(path: str) -> bool:
    """A request target that is a whole URL (as sent to a proxy), not a path."""
    return path.startswith(("http://", "https://")) or path.startswith(("HTTP://", "HTTPS://"))


def origin_path(path: str) -> str:
    """The path part of a request target: itself, or the path of an absolute-form URL."""
    if not is_absolute_form(path):
        return path
    rest = path.split("://", 1)[1]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def mask_userinfo(url: str) -> str:
    """A URL as it may be shown: `http://user:***@host/` (a lone user name, often a token, is
    `***@host`); a URL without user info is returned as it is."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" not in authority:
        return url
    userinfo, _, host = authority.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}://{shown}@{host}{tail}"
