"""The detail pane: Request, Attempts, Signature and Diff tabs over one delivery."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from hookinspect.model import Attempt, Delivery
from hookinspect.signing.registry import SignatureReport
from hookinspect.store.queue import QueueItem
from hookinspect.views.body import PRETTY_LIMIT
from hookinspect.views.delivery import (
    ATTEMPT_COLUMNS,
    attempt_cells,
    attempt_lines,
    change_lines,
    delivery_lines,
    queue_lines,
    signature_lines,
)
from hookinspect.views.text import Line


def text_of(lines: list[Line]) -> Text:
    """A view's lines as one rich Text (spans already escaped; never parsed as markup)."""
    return Text("\n").join(Text.assemble(*line) for line in lines)


class DeliveryDetail(Vertical):
    """Shows what the app hands it; reads nothing itself."""

    def compose(self) -> ComposeResult:
        with TabbedContent():
            with TabPane("Request", id="tab-request"), VerticalScroll():
                yield Static(id="request")
            with TabPane("Attempts", id="tab-attempts"), VerticalScroll():
                yield Static(id="attempts")
            with TabPane("Signature", id="tab-signature"), VerticalScroll():
                yield Static(id="signature")
            with TabPane("Diff", id="tab-diff"), VerticalScroll():
                yield Static(Text("d: compare with the marked delivery, or the previous one of the same event", style="dim"),
                             id="diff")

    def focus_tabs(self) -> None:
        """Focus the tab bar (the TabbedContent itself takes no focus): arrows switch tabs, tab goes down."""
        self.query_one(TabbedContent).query_one(Tabs).focus()

    def show_nothing(self, message: str) -> None:
        self.query_one("#request", Static).update(Text(message, style="dim"))

    def show(self, delivery: Delivery, attempts: list[Attempt], signature: SignatureReport, *,
             queued: list[QueueItem] | None = None, show_all_body: bool = False) -> None:
        limit = max(len(delivery.body), 1) if show_all_body else PRETTY_LIMIT
        self.query_one("#request", Static).update(text_of(delivery_lines(delivery, body_limit=limit,
                                                                          fold_arrays=not show_all_body)))
        self.query_one("#attempts", Static).update(self._attempts(attempts, queued or []))
        self.query_one("#signature", Static).update(text_of(signature_lines(signature)))

    @staticmethod
    def _attempts(attempts: list[Attempt], queued: list[QueueItem]) -> Group | Text:
        if not attempts:
            return text_of([[("not sent anywhere yet: r replays, R asks for a URL", "dim")], *queue_lines(queued)])
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ATTEMPT_COLUMNS:
            table.add_column(name, justify="right" if name in ("n", "latency") else "left")
        for attempt in attempts:
            table.add_row(*(Text.assemble(*cell) for cell in attempt_cells(attempt)))
        details = [line for attempt in reversed(attempts) for line in [[], *attempt_lines(attempt)]]
        return Group(text_of(queue_lines(queued)), table, text_of(details))

    def show_diff(self, before: Delivery, after: Delivery, changes: list) -> None:  # noqa: ANN001 - list[diff.Change]
        header: Line = [(f"#{before.seq} → #{after.seq}   ({len(changes)} changes)", "bold")]
        self.query_one("#diff", Static).update(text_of([header, [], *change_lines(changes)]))
        self.query_one(TabbedContent).active = "tab-diff"
