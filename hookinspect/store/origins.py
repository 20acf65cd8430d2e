"""Relay origins: where a delivery that came through a relay was published (never stored twice)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


class OriginTable:
    """The relay-origin part of a Store (see store/sqlite.py)."""

    execute: Callable[..., sqlite3.Cursor]  # the Store's

    def latest_origin_id(self, prefix: str) -> int | None:
        """The highest remote event id stored from one relay channel (`prefix` + id), to resume after."""
        best = None
        for (origin,) in self.execute("SELECT origin FROM deliveries WHERE origin LIKE ? ESCAPE '\\'",
                                      (prefix.replace("%", "\\%").replace("_", "\\_") + "%",)):
            tail = origin[len(prefix):]
            if tail.isdigit():
                best = max(best or 0, int(tail))
        return best

    def has_origin(self, origin: str) -> bool:
        return self.execute("SELECT 1 FROM deliveries WHERE origin = ?", (origin,)).fetchone() is not None
