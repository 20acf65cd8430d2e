"""One delivery's detail as every shell shows it: read from the store, then drawn as lines."""

from __future__ import annotations

from dataclasses import dataclass

from hookinspect.model import Attempt, Delivery
from hookinspect.signing.registry import Secrets, signature_report
from hookinspect.store.queue import QueueItem
from hookinspect.store.sqlite import Store
from hookinspect.views.delivery import DetailLines, detail_lines


@dataclass(frozen=True)
class DetailRead:
    delivery: Delivery
    attempts: list[Attempt]
    queued: list[QueueItem]


def read_detail(store: Store, seq: int) -> DetailRead:
    """What the detail needs from the store (quick: do it under the store's lock)."""
    return DetailRead(store.get(seq), store.attempts(seq), store.queue_items(("pending", "dead"), seqs=[seq]))


def draw_detail(read: DetailRead, secrets: Secrets, *, show_all: bool = False) -> DetailLines:
    """The lines (slow on a big body: do it away from any lock or screen)."""
    return detail_lines(read.delivery, read.attempts, signature_report(read.delivery, secrets), read.queued,
                        show_all=show_all)
