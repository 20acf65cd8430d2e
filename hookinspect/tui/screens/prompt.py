"""Small modal screens: ask for a URL or a path, confirm, edit a request, show the keys."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea


class TextPrompt(ModalScreen[str | None]):
    """Asks for one value (a target URL, a file name); dismisses with it, or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "http://localhost:3000/webhooks") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self._typed_early = False  # keys came before the input had focus: they replace the offered value

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(Text(self.title_text))
            yield Input(value=self.value, placeholder=self.placeholder, id="url")

    def on_mount(self) -> None:
        self.call_after_refresh(self._type_ahead)

    def _type_ahead(self) -> None:
        """What was typed after the key that opened this prompt, before it was there: printable
        keys replace the offered value, Enter submits (the app held them: see its on_event)."""
        take = getattr(self.app, "take_typeahead", None)
        for event in take() if take is not None else []:
            if self._apply(event):
                return

    def on_key(self, event: events.Key) -> None:
        """A key that reaches the screen, not the input (typed before the input had focus)."""
        if not self.query_one("#url", Input).has_focus and (event.key == "enter" or event.is_printable):
            event.stop()
            self._apply(event)

    def _apply(self, event: events.Key) -> bool:
        """A key typed ahead: a character goes into the input (replacing the offered value),
        Enter submits it. True once the prompt is answered."""
        box = self.query_one("#url", Input)
        if event.key in ("enter", "escape"):
            self.dismiss(box.value.strip() or None if event.key == "enter" else None)
            return True
        if event.is_printable and event.character:
            box.value = (box.value if self._typed_early else "") + event.character
            box.cursor_position = len(box.value)
            self._typed_early = True
        return False

    @on(Input.Submitted, "#url")
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmPrompt(ModalScreen[bool]):
    """A yes/no question: `y` or enter says yes, `n` or escape no."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(Text(self.question))
            yield Label(Text("y or enter: yes · n or escape: no", style="dim"))

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class EditRequest(ModalScreen[tuple[list[tuple[str, str]], bytes] | None]):
    """Edit headers (one `Name: value` per line) and the body, then send with ctrl+s."""

    BINDINGS = [Binding("ctrl+s", "send", "Send"), Binding("escape", "cancel", "Cancel")]

    def __init__(self, headers: list[tuple[str, str]], body: str) -> None:
        super().__init__()
        self.headers_text = "\n".join(f"{k}: {v}" for k, v in headers)
        self.body_text = body

    def compose(self) -> ComposeResult:
        with Vertical(id="editor"):
            yield Label(Text("Edit and replay — ctrl+s sends, escape cancels. The stored delivery is not changed."))
            yield TextArea(self.headers_text, id="headers")
            yield TextArea(self.body_text, id="body")

    def action_send(self) -> None:
        headers = []
        for line in self.query_one("#headers", TextArea).text.splitlines():
            name, colon, value = line.partition(":")
            if colon and name.strip():
                headers.append((name.strip(), value.strip()))
        self.dismiss((headers, self.query_one("#body", TextArea).text.encode("utf-8")))

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key, scrollable (at 80×24 it does not fit at once)."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings_list = bindings

    def compose(self) -> ComposeResult:
        table = Table(title="hookinspect keys", box=None, show_header=False)
        table.add_column(style="bold cyan")
        table.add_column()
        for key, description in self.bindings_list:
            table.add_row(key, description)
        table.add_row("", "")
        table.add_row("filter", "method:POST provider:stripe event:invoice.* verdict:invalid status:5xx path:/hooks/* "
                                "$.data.object.amount>1000 and free text")
        with VerticalScroll(id="help"):
            yield Static(table)

    def on_mount(self) -> None:
        self.query_one("#help").focus()  # arrows and page keys scroll it

    def action_close(self) -> None:
        self.dismiss(None)
