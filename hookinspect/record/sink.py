"""Where recordings go, without making the app wait: a bounded queue and one writer thread
(in the middleware's writer process, record/writer_process.py, or in the app's own).

The request being answered only puts its Exchange on the queue (never blocking); when the
queue is full the recording is dropped and counted, and the log says so once until recording
works again. The writer thread builds each delivery, detects its provider (as `listen` does),
leaves out what the rules do not select, redacts, and writes: to a store file through the
one capture path (Recorder: group commit, one transaction per batch), or to a relay channel
as the request itself. A failure to write (a full disk, a relay away) is counted the same way
and never reaches the app.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from hookinspect.errors import StoreError
from hookinspect.formats.redaction import redact, redact_attempt
from hookinspect.model import Attempt, Delivery, Headers
from hookinspect.record.exchange import Exchange
from hookinspect.record.settings import RecordSettings
from hookinspect.signing.registry import Secrets, annotate_delivery, may_be_from_a_provider

log = logging.getLogger("hookinspect.record")
# A writer takes a batch and says how many of it were written, and the first error if not all
# were; None closes what it holds.
Writer = Callable[[list[tuple[Delivery, Attempt]] | None], tuple[int, Exception | None]]
BATCH = 256  # recordings written in one go at most (one transaction for a store)
# How long the writer lets recordings gather after the first of a batch: a commit costs more
# than the rows in it, and a recording is a copy nobody waits for.
LINGER_SECONDS = 0.02
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


def may_be_selected(settings: RecordSettings, exchange: Exchange) -> bool:
    """Whether an answered exchange can be one the rules want: no provider cue in its headers or
    body is enough to leave it out when the rules need a provider (the exact check comes later)."""
    return not settings.needs_provider or may_be_from_a_provider(Headers.from_raw(exchange.headers), exchange.body)


class RecordingSink:
    """In the app's process (`threaded`): a bounded queue and the writer thread behind it. In
    the writer process, which has nothing else to do, the caller hands batches to `write`."""

    def __init__(self, settings: RecordSettings, secrets: Secrets | None = None,
                 say: Callable[[str], None] | None = None, threaded: bool = True) -> None:
        self.settings = settings
        self.secrets = secrets or Secrets()
        self.say = say or (lambda line: log.warning("%s", line))
        self.recorded = 0
        self.left_out = 0  # not selected once their provider was known
        self.dropped = 0  # selected, and not recorded: the queue was full or writing failed
        self._failing: str | None = None  # why recordings are being dropped, said once
        self._lock = threading.Lock()
        self._writer: Writer | None = None  # opened on the first batch
        self._thread: threading.Thread | None = None
        if threaded:
            self._start()
            atexit.register(self.close)  # what is queued when the app's process ends is still written

    def _start(self) -> None:
        # A server that forks its workers after loading the app (gunicorn --preload) leaves this
        # thread behind in the parent: each process starts its own on first use.
        self._pid = os.getpid()
        self._queue: queue.Queue[Exchange | None] = queue.Queue(self.settings.queue)
        self._thread = threading.Thread(target=self._run, name="hookinspect-record", daemon=True)
        self._thread.start()

    def finish(self, exchange: Exchange) -> None:
        """The app answered (or raised): queue the exchange, unless it cannot be a webhook the
        rules want (no provider cue in its headers or body, when a provider is needed)."""
        if may_be_selected(self.settings, exchange):
            self.offer(exchange)

    def offer(self, exchange: Exchange) -> None:
        """From the request's thread or loop: queue it, or drop it and count it."""
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(exchange)
        except queue.Full:
            self._dropped(1, f"{self.settings.queue} recordings wait already (the writer is behind)")

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to `timeout` seconds), then stop the writer."""
        if self._thread is None:
            self._close_writer()
            return
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    # -- the writer ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            if batch[0] is not None and self._queue.qsize() < BATCH:
                time.sleep(LINGER_SECONDS)
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.write([exchange for exchange in batch if exchange is not None])
            if None in batch:
                self._close_writer()
                return

    def write(self, exchanges: list[Exchange]) -> None:
        """Build, select, redact and write recordings, BATCH at a time; count what was written
        and what was not (a failure to record never reaches the caller)."""
        for start in range(0, len(exchanges), BATCH):
            items = [item for exchange in exchanges[start:start + BATCH] if (item := self._prepared(exchange))]
            if not items:
                continue
            try:
                if self._writer is None:
                    self._writer = self._store_writer() if self.settings.store is not None else self._relay_writer()
                written, error = self._writer(items)
            except Exception as exc:  # noqa: BLE001 - a failure to record must never reach the app
                written, error = 0, exc
            if written:
                self._recorded(written)
            if error is not None:
                self._dropped(len(items) - written, error.message if isinstance(error, StoreError)
                              else f"{type(error).__name__}: {error}")

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer(None)
            self._writer = None

    def _prepared(self, exchange: Exchange) -> tuple[Delivery, Attempt] | None:
        delivery = exchange.delivery()
        with contextlib.suppress(Exception):  # a flaw in a check must not cost the recording
            annotate_delivery(delivery, self.secrets)
        if not self.settings.wants_provider(delivery.provider):
            self.left_out += 1
            return None
        attempt = exchange.attempt(delivery)
        delivery, _ = redact(delivery, self.settings.redaction)
        attempt, _ = redact_attempt(attempt, self.settings.redaction)
        return delivery, attempt

    def _store_writer(self) -> Writer:
        from hookinspect.recorder import Recorder
        from hookinspect.workspace import Workspace

        recorder: Recorder | None = None

        def write(items: list[tuple[Delivery, Attempt]] | None) -> tuple[int, Exception | None]:
            nonlocal recorder
            if items is None:
                if recorder is not None:
                    recorder.workspace.close()
                return 0, None
            if recorder is None:  # opened on first use, again after a failure to open
                # Commits survive the app's crash, not a power cut: a recording is a copy, and
                # the fsync of each batch was a quarter of the writer's time in a profile.
                recorder = Recorder(Workspace(self.settings.store, create=True, durability="process"))
            try:  # the batch is one transaction: all of it is written, or none
                recorder.record_batch([(delivery, (attempt,)) for delivery, attempt in items])
            except StoreError as exc:
                return 0, exc
            return len(items), None
        return write

    def _relay_writer(self) -> Writer:
        import httpx
        client = httpx.Client(timeout=10)
        channel = (self.settings.relay or "").rstrip("/")

        def write(items: list[tuple[Delivery, Attempt]] | None) -> tuple[int, Exception | None]:
            if items is None:
                client.close()
                return 0, None
            for written, (delivery, _) in enumerate(items):  # the request itself: the relay keeps it as it came
                headers = [(k, v) for k, v in delivery.headers.raw() if k.decode("latin-1").lower() not in HOP_BY_HOP]
                url = channel + delivery.path + (f"?{delivery.query}" if delivery.query else "")
                try:
                    answer = client.request(delivery.method, url, headers=headers, content=delivery.body)
                except httpx.HTTPError as exc:
                    return written, exc
                if answer.status_code >= 300:
                    return written, RuntimeError(f"the relay answered {answer.status_code}")
            return len(items), None
        return write

    # -- saying so once ------------------------------------------------------------------------

    def _dropped(self, count: int, why: str) -> None:
        with self._lock:
            self.dropped += count
            if self._failing is None:
                self.say(dropped_line(why))
            self._failing = why

    def _recorded(self, count: int) -> None:
        with self._lock:
            self.recorded += count
            # "Works again" once the writer has caught up: while it stays behind, a batch that
            # went through between two drops would make the log say it every batch.
            if self._failing is not None and (self._thread is None or self._queue.empty()):
                self.say(recovered_line(self.dropped))
                self._failing = None


def dropped_line(why: str) -> str:
    return f"hookinspect record: recordings are dropped ({why}); the app is not affected; counting until recording works again"


def recovered_line(dropped: int) -> str:
    return f"hookinspect record: recording works again; {dropped} recordings were dropped so far"
