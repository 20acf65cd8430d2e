"""The durable forward queue of `listen --ack`: deliver in order per target, retry with backoff.

Items live in the store (forward_queue table), written in the same transaction as their
delivery, so a restart (even after kill -9) resumes where the last one stopped.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable

from hookinspect.errors import StoreError
from hookinspect.forward import Forwarder
from hookinspect.model import Attempt, now_us
from hookinspect.store.queue import QueueItem
from hookinspect.store.sqlite import Store
from hookinspect.workspace import StoreChange, Workspace

# Seconds to wait before each retry: Standard Webhooks' recommended schedule
# (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
DEFAULT_MAX_ATTEMPTS = len(DEFAULT_SCHEDULE)
# Longest sleep between looks at the queue when nothing wakes the worker.
IDLE_POLL = 1.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (now if now is not None else time.time()))


def next_state(attempt: Attempt, tries: int, max_attempts: int, schedule: tuple[float, ...]) -> tuple[str, float]:
    """(state, delay in seconds) after an attempt: done on 2xx, dead on 410 or when out of tries."""
    if attempt.is_success:
        return "done", 0.0
    if attempt.response is not None and attempt.response.status == 410:
        return "dead", 0.0
    if tries >= max_attempts:
        return "dead", 0.0
    delay = float(schedule[min(tries, len(schedule) - 1)])
    if attempt.response is not None:
        asked = retry_after_seconds(attempt.response.headers.get("retry-after"))
        if asked is not None:
            delay = max(delay, asked)
    return "pending", delay


class ForwardQueueWorker:
    """Runs in the receiver's event loop; one delivery in flight per target.

    It wakes when the workspace announces a queued delivery; deliveries queued by another
    process (listen --workers) are found by looking at the queue every `idle_poll` seconds.
    """

    def __init__(self, workspace: Workspace, forwarder: Forwarder, *,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS, schedule: tuple[float, ...] = DEFAULT_SCHEDULE,
                 on_attempt: Callable[[Attempt, QueueItem, str], None] | None = None,
                 idle_poll: float = IDLE_POLL) -> None:
        self.workspace = workspace
        self.idle_poll = idle_poll  # shorter when other processes queue deliveries without waking this one
        self.forwarder = forwarder
        self.max_attempts = max_attempts
        self.schedule = schedule
        self.on_attempt = on_attempt
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._settled = 0  # sends recorded so far; a queue read that overlapped one may predate it

    def wake(self) -> None:
        self._wake.set()

    def _on_change(self, change: StoreChange) -> None:
        if change.kind == "queued":
            self._wake.set()  # announced in the event loop's thread, by the recorder

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        unsubscribe = self.workspace.changes.subscribe(self._on_change)
        try:
            while True:
                settled = self._settled
                heads = await self.workspace.read(lambda store: store.queue_heads())
                if settled != self._settled:
                    # A send finished during the read, which may show its item as still due:
                    # read again rather than send it twice (or retry it before its backoff).
                    continue
                now = now_us()
                sleep_for = self.idle_poll
                for item in heads:
                    if item.target in self._in_flight:
                        continue
                    if item.next_at_us <= now:
                        self._in_flight.add(item.target)
                        task = asyncio.create_task(self._deliver(item))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    else:
                        sleep_for = min(sleep_for, (item.next_at_us - now) / 1e6)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, sleep_for))
                except TimeoutError:
                    pass
        finally:
            unsubscribe()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, item: QueueItem) -> None:
        try:
            delivery = await self.workspace.read(lambda store: store.get(item.delivery_seq))
            attempt = await self.forwarder.send(delivery, item.target, kind="queue")
            tries = item.tries + 1
            state, delay = next_state(attempt, tries, self.max_attempts, self.schedule)
            next_at = now_us() + int(delay * 1_000_000)

            def record(store: Store) -> None:
                store.add_attempt(attempt)
                store.queue_update(item.id, state, tries, next_at, attempt.outcome)

            try:
                await self.workspace.writer.call(record)
            except StoreError:
                # Sent, but not recorded (a full disk): the item stays due and goes again once the
                # store takes writes; the recorder tells the user why nothing is stored.
                return
            self.workspace.changes.announce(StoreChange("attempt", attempt.delivery_seq, attempt=attempt))
            if self.on_attempt is not None:
                self.on_attempt(attempt, item, state)
        finally:
            self._settled += 1
            self._in_flight.discard(item.target)
            self.wake()
