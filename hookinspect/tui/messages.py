"""Messages the app posts to itself from its workers and from other threads."""

from __future__ import annotations

from textual.message import Message

from hookinspect.intake.receiver import ReceiverEvent
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
