"""The relay's log: what happened, one record each, for a person (text) or a log pipeline (JSON).

A record is a dict: time, level, event, message, and fields (channel hash, status, latency).
The shell decides how a record is shown; `json_line` is the JSON form. Nothing a sender sent
goes in a record (no bodies, no headers, no channel ids, no tokens): a log is copied to places
the relay's data never goes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hookinspect.relay.metrics import channel_hash

Record = dict[str, Any]
# Request lines (with `requests` on) written per second at most; a flood of strangers'
# requests must not fill the operator's disk with one line each.
REQUEST_LINES_PER_SECOND = 1000


def json_line(record: Record) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True)


class RelayLog:
    def __init__(self, emit: Callable[[Record], None] | None = None, *, requests: bool = False) -> None:
        self.emit = emit or (lambda _record: None)
        self.requests = requests
        self._second = 0
        self._lines_this_second = 0
        self._left_out = 0

    def state(self, event: str, message: str, level: str = "warning", **fields: Any) -> None:
        """Something an operator must know: a storage failing or working again, a drain."""
        self.emit(self._record(level, event, message, fields))

    def request(self, event: str, channel: str | None, status: int, seconds: float, outcome: str,
                remote: str | None = None) -> None:
        """One request to a channel (a post, or a stream's end), with `requests` on."""
        if not self.requests:
            return
        second = int(time.monotonic())
        if second != self._second:
            if self._left_out:
                self.emit(self._record("warning", "log.requests_left_out",
                                       f"{self._left_out} request lines left out (over {REQUEST_LINES_PER_SECOND} "
                                       "a second)", {"count": self._left_out}))
            self._second, self._lines_this_second, self._left_out = second, 0, 0
        if self._lines_this_second >= REQUEST_LINES_PER_SECOND:
            self._left_out += 1
            return
        self._lines_this_second += 1
        fields = {"channel": channel_hash(channel) if channel else None, "status": status,
                  "latency_ms": round(seconds * 1000, 2), "outcome": outcome, "remote": remote}
        where = f"channel {fields['channel']}" if channel else "no channel"
        self.emit(self._record("info", event, f"{event} {status} {outcome} {where} {fields['latency_ms']} ms",
                               fields))

    @staticmethod
    def _record(level: str, event: str, message: str, fields: dict[str, Any]) -> Record:
        now = datetime.now(UTC)
        return {"time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": level,
                "event": event, "message": message, **fields}
