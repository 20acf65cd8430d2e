"""The record middleware's writer in a process of its own, so that recording costs the app's
process (and its GIL) only the handing over: a pickled Exchange on a pipe, written by a feeder
thread, not the building, detecting, redacting and storing a RecordingSink does.

The app's side (ProcessSink) starts `python -m hookinspect.record.writer_process`, sends it the
settings and secrets first (on the pipe, never in its arguments: `ps` shows those), then one
length-prefixed frame per exchange. The child runs a RecordingSink and reports its counts and
what it has to say as JSON lines. A child that dies is started again (what it held is counted
as dropped); one that cannot start leaves the recording to a thread in the app's process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue
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


def write_frame(stream: IO[bytes], item: object) -> None:
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(data)) + data)


def read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    return pickle.loads(stream.read(size))  # noqa: S301 - frames come from the parent process only


class ProcessSink:
    """The app's side: the same interface as RecordingSink (finish, offer, close, the counts)."""

    def __init__(self, settings: RecordSettings, secrets: Secrets | None = None) -> None:
        self.settings = settings
        self._secrets = secrets or Secrets()
        self._queue: queue.Queue[Exchange | None] = queue.Queue(settings.queue)
        self._lock = threading.Lock()
        self._dropped_here = 0
        self._child_counts = {"recorded": 0, "dropped": 0, "left_out": 0}
        self._counted_before = {"recorded": 0, "dropped": 0, "left_out": 0}  # of children that ended
        self._failing: str | None = None
        self._fallback: RecordingSink | None = None
        self._start()
        import atexit
        atexit.register(self.close)

    def _start(self) -> None:
        """The feeder (and, on first use, the child) of this process: after a fork (gunicorn
        --preload) the parent's are not this process's."""
        self._pid = os.getpid()
        self._child: subprocess.Popen[bytes] | None = None
        self._feeder = threading.Thread(target=self._feed, name="hookinspect-record-feeder", daemon=True)
        self._feeder.start()

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
        with self._lock:
            here = getattr(self._fallback, name, 0) if self._fallback is not None else 0
            return self._counted_before[name] + self._child_counts[name] + here

    def finish(self, exchange: Exchange) -> None:
        if may_be_selected(self.settings, exchange):
            self.offer(exchange)

    def offer(self, exchange: Exchange) -> None:
        if self._pid != os.getpid():
            self._queue = queue.Queue(self.settings.queue)
            self._start()
        try:
            self._queue.put_nowait(exchange)
        except queue.Full:
            self._drop(1, f"{self.settings.queue} recordings wait already (the writer is behind)")

    def close(self, timeout: float = 5.0) -> None:
        if not self._feeder.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._feeder.join(timeout)

    # -- the feeder thread -------------------------------------------------------------------

    def _feed(self) -> None:
        sent_to_child: int = 0
        while True:
            item = self._queue.get()
            if self._fallback is None and (self._child is None or self._child.poll() is not None):
                if self._child is not None:  # it died: what it held is lost to the recording
                    self._child_ended(sent_to_child)
                    time.sleep(RESTART_SECONDS)
                self._start_child()
                sent_to_child = 0
            if item is None:
                self._stop()
                return
            if self._fallback is not None:
                self._fallback.offer(item)
                continue
            try:
                write_frame(self._child.stdin, item)  # type: ignore[union-attr, arg-type]
                sent_to_child += 1
                if self._queue.empty():
                    self._child.stdin.flush()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError, ValueError):
                self._drop(1, "the writer process ended")

    def _start_child(self) -> None:
        try:
            child = subprocess.Popen([sys.executable, "-m", "hookinspect.record.writer_process"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ})
            write_frame(child.stdin, (self.settings, self._secrets))  # type: ignore[arg-type]
            child.stdin.flush()  # type: ignore[union-attr]
        except (OSError, ValueError) as exc:  # no interpreter to start (an embedded one, say): a thread then
            log.warning("hookinspect record: no writer process (%s); recording in a thread of this process", exc)
            self._fallback = RecordingSink(self.settings, self._secrets)
            return
        with self._lock:
            self._child_counts = {"recorded": 0, "dropped": 0, "left_out": 0}
        self._child = child
        threading.Thread(target=self._read_reports, args=(child,), name="hookinspect-record-reports",
                         daemon=True).start()

    def _read_reports(self, child: subprocess.Popen[bytes]) -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if "say" in report:
                log.warning("%s", report["say"])
            else:
                with self._lock:
                    self._child_counts = {name: int(report.get(name, 0)) for name in self._child_counts}

    def _child_ended(self, sent: int) -> None:
        with self._lock:
            counts = self._child_counts
            unaccounted = max(0, sent - sum(counts.values()))
            for name in counts:
                self._counted_before[name] += counts[name]
            self._child_counts = {"recorded": 0, "dropped": 0, "left_out": 0}
        self._drop(unaccounted, f"the writer process ended (exit {self._child.returncode if self._child else '?'})")

    def _stop(self) -> None:
        if self._fallback is not None:
            self._fallback.close()
            return
        child = self._child
        if child is None:
            return
        with contextlib.suppress(OSError, ValueError):
            child.stdin.close()  # type: ignore[union-attr]
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()

    def _drop(self, count: int, why: str) -> None:
        if not count:
            return
        with self._lock:
            self._dropped_here += count
            said = self._failing is None
            self._failing = why
        if said:
            log.warning("%s", dropped_line(why))


def open_sink(settings: RecordSettings, secrets: Secrets | None, writer: str) -> RecordingSink | ProcessSink:
    """Where a recorder's exchanges go: a writer process (the default), or a thread of this one."""
    if writer == "process":
        return ProcessSink(settings, secrets)
    if writer == "thread":
        return RecordingSink(settings, secrets)
    from hookinspect.errors import UsageError
    raise UsageError(f"record: writer must be process or thread, got {writer!r}")


def main() -> None:
    """The child: settings first, then exchanges until the pipe closes; counts on stdout."""
    stdin, out = sys.stdin.buffer, sys.stdout
    settings, secrets = read_frame(stdin)
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            out.write(json.dumps({"say": line}) + "\n")
            out.flush()

    sink = RecordingSink(settings, secrets, say=say)
    stop = threading.Event()

    def report() -> None:
        last = None
        while True:
            ended = stop.wait(REPORT_SECONDS)
            counts = {"recorded": sink.recorded, "dropped": sink.dropped, "left_out": sink.left_out}
            if counts != last:
                with lock:
                    out.write(json.dumps(counts) + "\n")
                    out.flush()
                last = counts
            if ended:
                return

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    while (exchange := read_frame(stdin)) is not None:
        sink.offer(exchange)
    sink.close(timeout=30)
    stop.set()
    reporter.join()


if __name__ == "__main__":
    main()
