"""The relay's append path: group commit of what senders post (BatchingAppender) and the hub
that wakes subscribers and keeps the newest events of active channels in memory (ChannelHub)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import replace

from hookinspect.errors import StoreError
from hookinspect.relay.metrics import RelayMetrics
from hookinspect.relay.storage import RelayEvent, RelayStorage


class BatchingAppender:
    """Group commit for the relay: concurrent ingests share one transaction, and each sender is
    answered only after its delivery is committed.

    A delivery that arrives in a quiet moment (nothing else being stored, no commit just
    before) is committed on the event loop at once: at a steady rate, a hop to a thread and
    back costs more than the commit and was most of the relay's part of a delivery's latency.
    Deliveries that come close together go to the thread, where they share one transaction
    (and one fsync). A commit on the loop that turns out slow (a struggling disk) sends the
    following ones to the thread for a while.
    """

    MAX_BATCH = 512
    INLINE_MAX_BYTES = 256 * 1024
    QUIET_SECONDS = 0.002
    SLOW_INLINE_SECONDS = 0.005
    THREAD_ONLY_SECONDS = 10.0

    def __init__(self, storage: RelayStorage, hub: ChannelHub, metrics: RelayMetrics | None = None) -> None:
        self.metrics = metrics or RelayMetrics()
        self.storage = storage
        self.hub = hub
        self._pending: list[tuple[RelayEvent, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_thread = False  # a batch is being committed in a thread: later ones wait their turn
        self._inline_after = 0.0  # monotonic time: commits before it go to the thread
        self._unchecked_bytes = 0
        self._checkpointing: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in (self._task, self._checkpointing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def append(self, event: RelayEvent) -> int:
        event_id = self._commit_now(event)  # StoreError goes to the sender as a 503
        if event_id is not None:  # subscribers have it; its sender is answered once it is on disk
            if self.storage.syncs_after_append_now:
                await asyncio.to_thread(self.storage.sync)
            else:
                await asyncio.sleep(0)  # the subscribers' streams go out before this sender's answer
            return event_id
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        self._wake.set()
        return await future

    def _commit_now(self, event: RelayEvent) -> int | None:
        """Commit `event` on the loop if this is a quiet moment and the store can; its id, or None."""
        started = time.monotonic()
        if self._pending or self._in_thread or event.size > self.INLINE_MAX_BYTES or started < self._inline_after:
            return None
        ids = self.storage.append_now([event])
        if ids is None:
            return None
        took = time.monotonic() - started
        self.metrics.storage_seconds.labels("append").observe(took)
        self._inline_after = time.monotonic() + (self.THREAD_ONLY_SECONDS if took > self.SLOW_INLINE_SECONDS
                                                 else self.QUIET_SECONDS)
        self._committed([event], ids)
        return ids[0]

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH:]
                self._in_thread = True
                try:
                    with self.metrics.timed("append"):
                        ids = await asyncio.to_thread(self.storage.append_many, [event for event, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every sender of the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                finally:
                    self._in_thread = False
                    self._inline_after = max(self._inline_after, time.monotonic() + self.QUIET_SECONDS)
                self._committed([event for event, _ in batch], ids)
                for (_, future), event_id in zip(batch, ids, strict=True):
                    if not future.done():
                        future.set_result(event_id)

    def _committed(self, events: list[RelayEvent], ids: list[int]) -> None:
        """Hand just-committed events to their channels' subscribers, in id order. Subscribers
        first: their streams then go out in the same turn of the loop as the senders' answers."""
        committed: dict[str, list[RelayEvent]] = {}
        for event, event_id in zip(events, ids, strict=True):
            committed.setdefault(event.channel, []).append(replace(event, id=event_id))
        for channel, channel_events in committed.items():
            self.hub.publish(channel, channel_events)
        every = self.storage.checkpoint_every
        if every is None:
            return
        self._unchecked_bytes += sum(event.size for event in events)
        if self._unchecked_bytes >= every and self._checkpointing is None:
            self._unchecked_bytes = 0
            self._checkpointing = asyncio.create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            await asyncio.to_thread(self.storage.checkpoint)
        except StoreError:
            pass  # the log keeps growing until a later one works; commits say why the disk fails
        finally:
            self._checkpointing = None


class _Recent:
    """The newest committed events of one channel, oldest first, and the bytes they hold."""

    def __init__(self) -> None:
        self.events: deque[RelayEvent] = deque()
        self.size = 0


class ChannelHub:
    """Wakes the subscribers of a channel when something new is stored, and keeps the newest
    events of recently active channels in memory, so that live subscribers need not read
    them back. Memory is bounded by events and bytes per channel and by channel count."""

    RECENT_PER_CHANNEL = 1024
    RECENT_BYTES_PER_CHANNEL = 1024 * 1024
    RECENT_CHANNELS = 64

    def __init__(self, remember: bool = True) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._recent: OrderedDict[str, _Recent] = OrderedDict()  # least recently published first
        self._remember = remember  # False when other processes append to the same store

    def publish(self, channel: str, events: list[RelayEvent]) -> None:
        """Events just committed, in id order."""
        if self._remember:
            recent = self._recent.pop(channel, None) or _Recent()
            self._recent[channel] = recent
            recent.events.extend(events)
            recent.size += sum(event.size for event in events)
            while recent.events and (len(recent.events) > self.RECENT_PER_CHANNEL
                                     or recent.size > self.RECENT_BYTES_PER_CHANNEL):
                recent.size -= recent.events.popleft().size
            while len(self._recent) > self.RECENT_CHANNELS:
                self._recent.popitem(last=False)
        self.notify(channel)

    def recent_after(self, channel: str, after_id: int, limit: int) -> list[RelayEvent] | None:
        """The events after `after_id` from memory, or None when memory may not hold all of them.

        Everything this process committed to a channel since its oldest kept event is kept,
        so memory is complete for a subscriber that already has that oldest event.
        """
        recent = self._recent.get(channel)
        if recent is None or not recent.events or after_id < recent.events[0].id:
            return None
        newer: list[RelayEvent] = []
        for event in reversed(recent.events):
            if event.id <= after_id:
                break
            newer.append(event)
        newer.reverse()
        return newer[:limit]

    def notify(self, channel: str) -> None:
        event = self._events.pop(channel, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        for channel in list(self._events):
            self.notify(channel)

    def waiter(self, channel: str) -> asyncio.Event:
        """Take this before reading the store, so nothing stored after the read is missed."""
        return self._events.setdefault(channel, asyncio.Event())
