"""The detail pane: Request, Attempts, Signature and Diff tabs over one delivery."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import TabbedContent, TabPane, Tabs

from hookinspect.tui.widgets.lines_view import LinesView
from hookinspect.views.delivery import DetailLines
from hookinspect.views.text import Line

TABS = ("tab-request", "tab-attempts", "tab-signature", "tab-diff")
DIFF_HINT: list[Line] = [[("d: compare with the marked delivery, or the previous one of the same event", "dim")]]


class DeliveryDetail(Vertical):
    """Shows what the app hands it (lines computed elsewhere); reads nothing itself."""

    def compose(self) -> ComposeResult:
        with TabbedContent():
            with TabPane("1 Request", id="tab-request"):
                yield LinesView(id="request")
            with TabPane("2 Attempts", id="tab-attempts"):
                yield LinesView(id="attempts")
            with TabPane("3 Signature", id="tab-signature"):
                yield LinesView(id="signature")
            with TabPane("4 Diff", id="tab-diff"):
                yield LinesView(DIFF_HINT, id="diff")

    def focus_tabs(self) -> None:
        """Focus the tab bar (the TabbedContent itself takes no focus): arrows switch tabs, tab goes down."""
        self.query_one(TabbedContent).query_one(Tabs).focus()

    def switch_to(self, number: int) -> None:
        """Tab 1–4, as the keys say."""
        self.query_one(TabbedContent).active = TABS[number - 1]

    def _view(self, name: str) -> LinesView:
        return self.query_one(f"#{name}", LinesView)

    def show_nothing(self, message: str) -> None:
        for name in ("request", "attempts", "signature"):
            self._view(name).set_lines([[(message, "dim")]] if name == "request" else [])

    def show_rendering(self, seq: int) -> None:
        self._view("request").set_lines([[(f"#{seq}: rendering…", "dim")]])

    def show(self, view: DetailLines, *, same_delivery: bool = False) -> None:
        """A delivery's lines; `same_delivery` (an attempt was added, say) keeps where the user scrolled."""
        self._view("request").set_lines(view.request, keep_scroll=same_delivery)
        self._view("attempts").set_lines(view.attempts, keep_scroll=same_delivery)
        self._view("signature").set_lines(view.signature, keep_scroll=same_delivery)

    def reset_diff(self) -> None:
        """The cursor moved: a comparison of another pair would mislead."""
        self._view("diff").set_lines(DIFF_HINT)

    def show_diff(self, lines: list[Line]) -> None:
        self._view("diff").set_lines(lines)
        self.query_one(TabbedContent).active = "tab-diff"
