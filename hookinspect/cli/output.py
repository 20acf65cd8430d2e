"""Where the CLI writes: data to stdout, messages to stderr, captured bytes always escaped."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from rich.console import Console, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from hookinspect.body import escape_controls, json_text, terminal_safe
from hookinspect.views.text import Line, safe


def add_columns(table: Table, names: tuple[str, ...] | list[str], *, right: tuple[str, ...] = (),
                prose: tuple[str, ...] = ()) -> None:
    """A table's columns, fitted to the terminal: a name (a path, an event, a URL, a number) is
    never broken across lines; when the table is too wide it is cut with an ellipsis. Only
    `prose` columns wrap, at spaces."""
    for name in names:
        if name in prose:
            table.add_column(name, overflow="fold", ratio=2)
        else:
            table.add_column(name, no_wrap=True, overflow="ellipsis", justify="right" if name in right else "left")


def safe_text(value: str | None, style: str = "") -> Text:
    """Captured text as a rich Text: never markup, control characters made visible."""
    return Text(*safe(value, style))


def rich_line(line: Line) -> Text:
    """A view's line as rich Text (its spans are already escaped; styles are rich styles)."""
    return Text.assemble(*line)


def rich_lines(lines: list[Line]) -> Text:
    return Text("\n").join(rich_line(line) for line in lines)


# Below this width a table with prose columns folds words apart: records are stacked instead.
NARROW_COLUMNS = 100


class TerminalConsole(Console):
    """The one terminal door: every text segment any command prints has its control characters
    made visible, whatever the command built it from (a fixture's name, a target's answer, a
    provider's error). Only rich's own control segments (a progress bar moving the cursor) and
    the styles it renders itself reach the terminal as codes; markup is never parsed."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        kwargs.setdefault("highlight", False)
        super().__init__(**kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(terminal_safe(segment.text), segment.style)
            for segment in buffer)


@dataclass
class Output:
    """The streams a command writes to; tests pass their own."""

    stdout: Console = field(default_factory=lambda: TerminalConsole(soft_wrap=False))
    stderr: Console = field(default_factory=lambda: TerminalConsole(stderr=True))
    binary_stdout: BinaryIO | None = None

    def print(self, renderable: RenderableType = "") -> None:
        self.stdout.print(renderable)

    @property
    def is_narrow(self) -> bool:
        """Too narrow for a table of prose columns (an 80-column terminal): use `stacked`."""
        return self.stdout.width < NARROW_COLUMNS

    def stacked(self, records: list[tuple[Text, list[Text]]]) -> None:
        """Records for a narrow terminal: the name on its line, the rest below it, indented and
        joined by ` · `, wrapped at spaces by the terminal (a table's cells broke mid-word)."""
        for name, details in records:
            self.stdout.print(name, soft_wrap=True)
            self.stdout.print(Text("  ") + Text(" · ", style="dim").join(details), soft_wrap=True)

    def line(self, text: Text) -> None:
        """One line of a result, kept whole: a narrow terminal wraps it, no newline is put inside
        it (a status and its latency were broken across lines at 80 columns)."""
        self.stdout.print(text, soft_wrap=True)

    def lines(self, lines: list[Line]) -> None:
        """A view's lines as they are: long ones are wrapped by the terminal, not cut mid-word by us."""
        if lines:
            self.stdout.print(rich_lines(lines), soft_wrap=True)

    def json(self, data: Any, *, one_line: bool = False) -> None:
        """Stable machine output: plain JSON on stdout, no colours, no wrapping (`one_line`: a
        JSON-lines stream, an object per line)."""
        text = json_text(data, indent=None if one_line else 2)
        self.stdout.file.write(text + "\n")
        self.stdout.file.flush()

    def raw(self, data: bytes) -> None:
        stream = self.binary_stdout or getattr(sys.stdout, "buffer", None)
        if stream is None:  # a text-only stdout (some test runners): best effort
            sys.stdout.write(data.decode("utf-8", "surrogateescape"))
            return
        stream.write(data)
        stream.flush()

    def info(self, message: str) -> None:
        self.stderr.print(Text(message, style="dim"), soft_wrap=True)

    def warn(self, message: str) -> None:
        """One line, however long: the terminal wraps it, a log keeps it whole."""
        self.stderr.print(Text("warning: " + message, style="bold yellow"), soft_wrap=True)

    def error(self, message: str, hint: str | None = None) -> None:
        line = Text("error: ", style="bold red") + Text(escape_controls(message, keep_newlines=False))
        if hint:
            line += Text(f" ({hint})", style="dim")
        self.stderr.print(line, soft_wrap=True)
