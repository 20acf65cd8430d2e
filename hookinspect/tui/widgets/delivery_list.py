"""The live list of deliveries: pages loaded from the store on demand, newest first."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from hookinspect.store.deliveries import DeliveryRow
from hookinspect.views.delivery import row_cells
from hookinspect.views.text import Line

# Rows fetched per page; more are fetched when the cursor nears the end of what is loaded.
PAGE_SIZE = 200
# How close to the loaded end (in rows) the cursor gets before the next page is fetched.
PREFETCH_MARGIN = 30


# Columns after the mark, and how much of each is shown (None: all of it).
_COLUMN_WIDTHS = (("seq", None), ("time", None), ("method", None), ("path", 60), ("event", 40), ("sig", None),
                  ("size", None), ("last", None))


def _cut(line: Line, width: int | None) -> Text:
    text = Text.assemble(*line)
    if width is not None and len(text) > width:
        text.truncate(width - 1)
        text.append("…")
    return text


class DeliveryList(DataTable):
    """Rows keyed by sequence number; captured text only ever as escaped Text."""

    class NeedsMore(Message):
        """The cursor is near the oldest loaded row: the app fetches an older page."""

        def __init__(self, before_seq: int) -> None:
            super().__init__()
            self.before_seq = before_seq

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.marked: set[int] = set()
        self.seqs: list[int] = []  # loaded, newest first
        self.exhausted = False

    def on_mount(self) -> None:
        for label, key in (("", "mark"), ("#", "seq"), ("time", "time"), ("method", "method"), ("path", "path"),
                           ("event", "event"), ("sig", "sig"), ("size", "size"), ("last", "last")):
            self.add_column(label, key=key)

    @property
    def current_seq(self) -> int | None:
        if not self.seqs or self.cursor_row < 0 or self.cursor_row >= len(self.seqs):
            return None
        return self.seqs[self.cursor_row]

    def reset_rows(self) -> None:
        self.clear()
        self.seqs = []
        self.exhausted = False

    def _cells(self, row: DeliveryRow) -> list[Text]:
        cells = row_cells(row, with_ms=True)
        return [
            Text("●" if row.seq in self.marked else "", style="bold yellow"),
            *(_cut(cells[name], width) for name, width in _COLUMN_WIDTHS),
        ]

    def append_page(self, rows: list[DeliveryRow]) -> None:
        """Older rows, newest first, go at the end."""
        for row in rows:
            if str(row.seq) in self.rows:
                continue
            self.add_row(*self._cells(row), key=str(row.seq))
            self.seqs.append(row.seq)
        if len(rows) < PAGE_SIZE:
            self.exhausted = True

    def prepend(self, rows: list[DeliveryRow]) -> None:
        """Newer rows (oldest first) go on top; the cursor stays on the delivery it was on."""
        new = [r for r in rows if str(r.seq) not in self.rows]
        if not new:
            return
        current = self.current_seq
        for row in new:
            self.add_row(*self._cells(row), key=str(row.seq))
        self.seqs = sorted(set(self.seqs) | {r.seq for r in new}, reverse=True)
        self.sort("seq", key=lambda cell: -int(cell.plain))
        if current is not None and self.cursor_row != 0:
            self.move_cursor(row=self.seqs.index(current), scroll=False)

    def update_delivery_row(self, row: DeliveryRow) -> None:
        if str(row.seq) not in self.rows:
            return
        for key, cell in zip(("mark", "seq", "time", "method", "path", "event", "sig", "size", "last"),
                             self._cells(row), strict=True):
            self.update_cell(str(row.seq), key, cell)

    def drop(self, seq: int) -> None:
        if str(seq) in self.rows:
            self.remove_row(str(seq))
            self.seqs.remove(seq)
            self.marked.discard(seq)

    def toggle_mark(self, seq: int) -> None:
        if seq in self.marked:
            self.marked.remove(seq)
        else:
            self.marked.add(seq)
        self.update_cell(str(seq), "mark", Text("●" if seq in self.marked else "", style="bold yellow"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.exhausted and self.seqs and event.cursor_row >= len(self.seqs) - PREFETCH_MARGIN:
            self.post_message(self.NeedsMore(self.seqs[-1]))
