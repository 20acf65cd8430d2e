"""The record middleware's writer in a process of its own, so that recording costs the app's
process (and its GIL) only the handing over: one non-blocking write of a pickled exchange to a
pipe, in the request's own thread. Building, detecting, redacting and storing (a RecordingSink)
happen in the child. A feeder thread in the app cost more than all of that: each hand-over
woke it and took the GIL from the event loop (measured: 210 µs of the app's CPU a request).

The app's side (ProcessSink) starts `python -m hookinspect.record.child`, sends it the
settings and secrets first (on the pipe, never in its arguments: `ps` shows those), then one
length-prefixed frame per exchange. The pipe (1 MiB where Linux allows) is the queue: when it
is full, a recording is dropped and counted. A frame written only in part is finished by a
thread that exists only for that. The child reports its counts and what it has to say as JSON
lines. A child that dies is started again (at most once a second; what it held is counted as
dropped); when none can be started, a thread in the app's process records instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

from hookinspect.record.exchange import Exchange
from hookinspect.record.settings import RecordSettings
from hookinspect.record.sink import RecordingSink, dropped_line, may_be_selected
from hookinspect.signing.registry import Secrets

log = logging.getLogger("hookinspect.record")
FRAME = struct.Struct("!I")
REPORT_SECONDS = 0.2
RESTART_SECONDS = 1.0
PIPE_BYTES = 1024 * 1024
F_SETPIPE_SZ = 1031  # Linux's fcntl for a pipe's capacity
COUNTS = ("recorded", "dropped", "left_out")


def frame(item: object) -> bytes:
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(data)) + data


def read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    return pickle.loads(stream.read(size))  # noqa: S301 - frames come from the parent process only


def split_frames(data: bytes) -> tuple[list[Any], bytes]:
    """The whole frames at the start of `data`, unpickled, and the bytes of the one cut short."""
    items, at = [], 0
    view = memoryview(data)
    while len(data) - at >= FRAME.size:
        (size,) = FRAME.unpack_from(data, at)
        if len(data) - at - FRAME.size < size:
            break
        items.append(pickle.loads(view[at + FRAME.size:at + FRAME.size + size]))  # noqa: S301 - from the parent only
        at += FRAME.size + size
    view.release()
    return items, data[at:]


class ProcessSink:
    """The app's side: the same interface as RecordingSink (finish, offer, close, the counts)."""

    def __init__(self, settings: RecordSettings, secrets: Secrets | None = None) -> None:
        self.settings = settings
        self._secrets = secrets or Secrets()
        self._lock = threading.Lock()
        self._dropped_here = 0
        self._counts = dict.fromkeys(COUNTS, 0)  # the child's, as last reported
        self._before = dict.fromkeys(COUNTS, 0)  # of children that ended
        self._failing: str | None = None
        self._fallback: RecordingSink | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._child_ended = False
        self._started_at = 0.0
        self._start_child()
        import atexit
        atexit.register(self.close)

    @property
    def recorded(self) -> int:
        return self._count("recorded")

    @property
    def dropped(self) -> int:
        return self._count("dropped") + self._dropped_here

    @property
    def left_out(self) -> int:
        return self._count("left_out")

    def _count(self, name: str) -> int:
        here = getattr(self._fallback, name, 0) if self._fallback is not None else 0
        with self._lock:
            return self._before[name] + self._counts[name] + here

    def finish(self, exchange: Exchange) -> None:
        if may_be_selected(self.settings, exchange):
            self.offer(exchange)

    def offer(self, exchange: Exchange) -> None:
        """In the request's thread or loop: one write to the pipe, never a wait."""
        if self._fallback is not None:
            self._fallback.offer(exchange)
            return
        data = frame(exchange.wire())
        with self._lock:
            # A child that ended is seen by the write (a broken pipe), not by asking for its
            # exit status: that is a system call on every request.
            if (self._pid != os.getpid() or self._child is None or self._child_ended) and not self._restart_locked():
                self._drop_locked(1, "the writer process is starting again")
                return
            if self._pending:
                self._drop_locked(1, "the pipe to the writer process is full (the writer is behind)")
                return
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                self._drop_locked(1, "the pipe to the writer process is full (the writer is behind)")
                return
            except OSError:  # the child ended: the next offer starts another
                self._child_ended = True
                self._drop_locked(1, "the writer process ended")
                return
            self._sent += 1
            if written < len(data):  # the rest must follow before any other frame
                self._pending = data[written:]
                threading.Thread(target=self._finish_frame, daemon=True).start()

    def close(self, timeout: float = 30.0) -> None:
        if self._fallback is not None:
            self._fallback.close()
            return
        with self._lock:
            child, self._child = self._child, None
        if child is None or self._pid != os.getpid():
            return
        self._write_pending(blocking=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()

    # -- the child -----------------------------------------------------------------------------

    def _start_child(self) -> bool:
        self._pid = os.getpid()
        self._sent = 0
        self._pending = b""
        self._started_at = time.monotonic()
        try:
            child = subprocess.Popen([sys.executable, "-m", "hookinspect.record.child"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            fd = child.stdin.fileno()  # type: ignore[union-attr]
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
            settings = frame((self.settings, self._secrets))
            os.write(fd, settings)  # blocking still: the settings go whole, first
            os.set_blocking(fd, False)
        except (OSError, ValueError) as exc:  # no interpreter to start (an embedded one, say): a thread then
            log.warning("hookinspect record: no writer process (%s); recording in a thread of this process", exc)
            self._fallback = RecordingSink(self.settings, self._secrets)
            return False
        self._child, self._fd, self._child_ended = child, fd, False
        self._counts = dict.fromkeys(COUNTS, 0)
        threading.Thread(target=self._read_reports, args=(child,), name="hookinspect-record-reports",
                         daemon=True).start()
        return True

    def _restart_locked(self) -> bool:
        """Another child, unless one was started less than a second ago (one that keeps dying
        must not cost every request a process). In a worker forked after the app was loaded
        (gunicorn --preload), the parent's child is not this process's: it starts its own."""
        forked = self._pid != os.getpid()
        if not forked and time.monotonic() - self._started_at < RESTART_SECONDS:
            return False
        if forked:
            self._counts, self._before, self._dropped_here = dict.fromkeys(COUNTS, 0), dict.fromkeys(COUNTS, 0), 0
        elif self._child is not None:  # what the child that ended did not report is lost
            unaccounted = max(0, self._sent - sum(self._counts.values()))
            for name in COUNTS:
                self._before[name] += self._counts[name]
            self._dropped_here += unaccounted
        with contextlib.suppress(OSError):
            os.close(self._fd)
        return self._start_child()

    def _read_reports(self, child: subprocess.Popen[bytes]) -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if "say" in report:
                log.warning("%s", report["say"])
                continue
            with self._lock:
                if child is self._child:
                    self._counts = {name: int(report.get(name, 0)) for name in COUNTS}
        with self._lock:  # its output ended: so did the child
            if child is self._child:
                self._child_ended = True

    def _finish_frame(self) -> None:
        """Write the rest of a frame, waiting as long as the child takes. Offers meanwhile see
        `_pending` and drop theirs: nobody else writes, and nothing waits for this."""
        self._write_pending(blocking=True)

    def _write_pending(self, blocking: bool) -> None:
        rest = self._pending
        if not rest:
            return
        os.set_blocking(self._fd, blocking)
        try:
            while rest:
                rest = rest[os.write(self._fd, rest):]
        except OSError:  # the child ended: the next offer starts another and counts what it lost
            self._child_ended = True
        finally:
            with contextlib.suppress(OSError):
                os.set_blocking(self._fd, False)
            self._pending = b""

    def _drop_locked(self, count: int, why: str) -> None:
        self._dropped_here += count
        if self._failing is None:
            log.warning("%s", dropped_line(why))
        self._failing = why


def open_sink(options: dict[str, Any]) -> tuple[RecordSettings, RecordingSink | ProcessSink | None]:
    """A middleware's settings from its options (record_settings' and `secrets`, `writer`), and
    where its exchanges go: a writer process (the default), a thread of this one, or nowhere
    when recording is off."""
    from hookinspect.record.settings import record_settings
    settings = record_settings(**{key: value for key, value in options.items() if key not in ("secrets", "writer")})
    writer, secrets = options.get("writer", "process"), options.get("secrets")
    if writer not in ("process", "thread"):
        from hookinspect.errors import UsageError
        raise UsageError(f"record: writer must be process or thread, got {writer!r}")
    if not settings.is_on:
        return settings, None
    return settings, ProcessSink(settings, secrets) if writer == "process" else RecordingSink(settings, secrets)
