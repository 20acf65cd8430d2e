"""Messages the app posts to itself from its workers and from other threads."""

from __future__ import annotations

from textual.message import Message

from hookinspect.intake.receiver import ReceiverEvent
from hookinspect.store.deliveries import DeliveryRow
from hookinspect.views.inbox import Arrivals, ListStart
from hookinspect.views.seq_index import Run
from hookinspect.workspace import StoreChange


class Scanned(Message):
    """More numbers for the list, from its scan (posted from the scan's thread, which does not wait)."""

    def __init__(self, generation: int, runs: list[Run], complete: bool) -> None:
        super().__init__()
        self.generation = generation
        self.runs = runs
        self.complete = complete


class StoreChanged(Message):
    """The workspace announced a change (posted from whichever thread announced it)."""

    def __init__(self, change: StoreChange) -> None:
        super().__init__()
        self.change = change


class ReceiverEventPosted(Message):
    """A refusal or relay state from the receiver's thread."""

    def __init__(self, event: ReceiverEvent) -> None:
        super().__init__()
        self.event = event


class Listed(Message):
    """The list's first numbers for a filter, read in a worker (see views/inbox.Inbox.start)."""

    def __init__(self, generation: int, start: ListStart) -> None:
        super().__init__()
        self.generation = generation
        self.start = start


class Arrived(Message):
    """Deliveries stored after #after, read in a worker (see views/inbox.Inbox.arrivals)."""

    def __init__(self, generation: int, after: int, arrivals: Arrivals) -> None:
        super().__init__()
        self.generation = generation
        self.after = after
        self.arrivals = arrivals


class RowsRead(Message):
    """Rows the list asked for, read in a worker; asked numbers missing from `rows` are deleted."""

    def __init__(self, asked: list[int], rows: dict[int, DeliveryRow]) -> None:
        super().__init__()
        self.asked = asked
        self.rows = rows


class Counted(Message):
    """The store's count of deliveries, read in a worker after a delete or another change."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
