"""The live list of deliveries, newest first: a virtual list over a SeqIndex.

Only the rows on screen are read from the store (and a bounded cache of recent ones), so a
million deliveries cost 8 bytes each in the index and memory does not grow as the user
scrolls; any position, the oldest included, is one lookup away.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from hookinspect.store.deliveries import DeliveryRow
from hookinspect.views.delivery import row_cells
from hookinspect.views.seq_index import SeqIndex

# Rows kept once read (on top of those on screen): enough for paging back and forth.
ROW_CACHE = 600
# Rows kept drawn (without the cursor or stripe): scrolling redraws only what changed.
_STRIP_CACHE = 300
MARK = "●"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # 0: shares what is left


# Optional columns in the order they are given up when the terminal is narrow.
_DROPPED_FIRST = ("size", "time", "last", "sig")
_PATH_MIN, _EVENT_MIN = 16, 12


def plan_columns(width: int, seq_width: int, time_width: int) -> list[Column]:
    """Columns that fit `width`: seq, method, path and event always; sig, last, time and size
    while they fit, then path and event share the rest (path the larger part)."""
    fixed = {"mark": 1, "seq": max(seq_width, 1), "method": 7}
    optional = {"time": time_width, "sig": 9, "size": 9, "last": 12}
    kept = dict(optional)
    for key in _DROPPED_FIRST:
        used = sum(fixed.values()) + sum(kept.values()) + len(fixed) + len(kept) + 2  # a space after each
        if used + _PATH_MIN + _EVENT_MIN <= width:
            break
        del kept[key]
    used = sum(fixed.values()) + sum(kept.values()) + len(fixed) + len(kept) + 2
    rest = max(width - used, _PATH_MIN + _EVENT_MIN)
    event = max(_EVENT_MIN, min(rest * 2 // 5, 40))
    path = rest - event
    order = ["mark", "seq", "time", "method", "path", "event", "sig", "size", "last"]
    widths = {**fixed, **kept, "path": path, "event": event}
    labels = {"mark": "", "seq": "#"}
    return [Column(key, labels.get(key, key), widths[key]) for key in order if key in widths]


def _fit(text: Text, width: int) -> Text:
    if text.cell_len > width:
        text.truncate(max(width - 1, 0))
        text.append("…")
    else:
        text.pad_right(width - text.cell_len)
    return text


class DeliveryList(ScrollView, can_focus=True):
    """Rows by position in a SeqIndex; captured text only ever as escaped Text."""

    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "newest", "Newest", show=False),
        Binding("end", "oldest", "Oldest", show=False),
        Binding("enter", "select", "Detail", show=False),
    ]
    COMPONENT_CLASSES = {"delivery-list--header", "delivery-list--cursor", "delivery-list--even"}
    DEFAULT_CSS = """
    DeliveryList {
        background: $surface;
        & > .delivery-list--header { text-style: bold; background: $panel; }
        & > .delivery-list--even { background: $surface-lighten-1 50%; }
        & > .delivery-list--cursor {
            background: $block-cursor-blurred-background; color: $block-cursor-blurred-foreground;
        }
        &:focus > .delivery-list--cursor {
            background: $block-cursor-background; color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    class _AboutDelivery(Message):
        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    class Highlighted(_AboutDelivery):
        """The cursor moved onto another delivery."""

    class Selected(_AboutDelivery):
        """`enter` (or a click on the current row): into the detail."""

    def __init__(self, ask_rows: Callable[[list[int]], None], **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        # Asks for rows it does not hold; they come back through rows_arrived (read in a worker:
        # the list never reads the store on the UI thread).
        self.ask_rows = ask_rows
        self._asked: set[int] = set()
        self._gone: set[int] = set()  # asked for and not in the store: deleted
        self.index = SeqIndex()
        self.cursor = 0
        self.marked: set[int] = set()
        self.want_oldest = False  # G before the scan reached the oldest: follow it down
        self._rows: OrderedDict[int, DeliveryRow] = OrderedDict()
        self._columns: list[Column] = []
        self._strips: OrderedDict[int, Strip] = OrderedDict()
        self._styles: dict[str, Style] = {}
        self._highlighted: int | None = None

    # -- what is listed --------------------------------------------------------------------

    @property
    def seqs(self) -> list[int]:
        """Every listed number, newest first (for tests and small lists: it is a copy)."""
        return list(self.index)

    @property
    def current_seq(self) -> int | None:
        return self.index[self.cursor] if 0 <= self.cursor < len(self.index) else None

    def reset(self, index: SeqIndex) -> None:
        self.index = index
        self.cursor = 0
        self.want_oldest = False
        self._highlighted = None
        self._rows.clear()
        self._gone.clear()
        self._strips.clear()
        self._sync_size()
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def grew_older(self, added: int) -> None:
        """The scan added `added` older numbers below the ones shown (redrawn only if they show)."""
        self._sync_size()
        if self.want_oldest:
            self.move_cursor(len(self.index) - 1)
            self.want_oldest = not self.index.complete
        elif self._highlighted is None and len(self.index):
            self.move_cursor(self.cursor)
        if len(self.index) - added < int(self.scroll_y) + self.scrollable_content_region.height:
            self.refresh()

    def grew_newer(self, added: int, *, follow: bool) -> None:
        """`added` arrivals went on top: the cursor follows them to the top when `follow`,
        otherwise it stays on the delivery it was on."""
        if not added:
            return
        self._sync_size()
        if follow or self._highlighted is None:
            self.move_cursor(0)
        else:
            self.cursor += added
            self.scroll_to(y=self.scroll_y + added, animate=False)
        self.refresh()

    def remember(self, rows: list[DeliveryRow]) -> None:
        for row in rows:
            self._remember(row)

    def forget(self, seq: int) -> None:
        """Read #seq again when it is next shown (an attempt changed its last outcome)."""
        self._strips.pop(seq, None)
        if self._rows.pop(seq, None) is not None:
            self.refresh()

    def remove(self, seqs: list[int]) -> None:
        current = self.current_seq
        self.index.remove(seqs)
        self.marked.difference_update(seqs)
        for seq in seqs:
            self._rows.pop(seq, None)
            self._strips.pop(seq, None)
        self._sync_size()
        if current is not None and len(self.index):
            self._highlighted = None if current in seqs else self._highlighted
            self.move_cursor(min(self.index.nearest_index(current), len(self.index) - 1))
        self.refresh()

    def restore(self, seqs: list[int]) -> None:
        """Removed rows back in their places; the cursor goes to the newest of them."""
        self.index.restore(seqs)
        self._sync_size()
        at = self.index.index_of(max(seqs))
        if at is not None:
            self.move_cursor(at)
        self.refresh()

    def toggle_mark(self, seq: int) -> None:
        self.marked.symmetric_difference_update({seq})
        self._strips.pop(seq, None)
        self.refresh()

    # -- moving ----------------------------------------------------------------------------

    def move_cursor(self, row: int) -> None:
        if not len(self.index):
            self.cursor, self._highlighted = 0, None
            return
        self.cursor = max(0, min(row, len(self.index) - 1))
        self._scroll_to_cursor()
        self.refresh()
        seq = self.index[self.cursor]
        if seq != self._highlighted:
            self._highlighted = seq
            self.post_message(self.Highlighted(seq))

    def _scroll_to_cursor(self) -> None:
        rows_visible = max(self.scrollable_content_region.height - 1, 1)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + rows_visible:
            self.scroll_to(y=self.cursor - rows_visible + 1, animate=False, immediate=True)

    @property
    def page(self) -> int:
        return max(self.scrollable_content_region.height - 2, 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + self.page)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - self.page)

    def action_newest(self) -> None:
        self.want_oldest = False
        self.move_cursor(0)

    def action_oldest(self) -> None:
        self.want_oldest = not self.index.complete
        self.move_cursor(len(self.index) - 1)

    def action_select(self) -> None:
        if self.current_seq is not None:
            self.post_message(self.Selected(self.current_seq))

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        row = int(self.scroll_y) + event.y - 1
        if row < len(self.index):
            if row == self.cursor:
                self.action_select()
            self.move_cursor(row)

    # -- drawing ---------------------------------------------------------------------------

    def _sync_size(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.index) + 1)  # + the header

    def on_resize(self) -> None:
        self._sync_size()
        self._scroll_to_cursor()

    def _remember(self, row: DeliveryRow) -> None:
        self._rows[row.seq] = row
        self._rows.move_to_end(row.seq)
        while len(self._rows) > ROW_CACHE:
            self._rows.popitem(last=False)

    def _visible_rows(self) -> list[DeliveryRow | None]:
        height = self.scrollable_content_region.height
        seqs = self.index.slice(int(self.scroll_y), int(self.scroll_y) + height)
        missing = [seq for seq in seqs if seq not in self._rows and seq not in self._asked and seq not in self._gone]
        if missing:
            self._asked.update(missing)
            self.ask_rows(missing)
        return [self._rows.get(seq) for seq in seqs]

    def rows_arrived(self, asked: list[int], rows: dict[int, DeliveryRow]) -> None:
        """Rows it asked for; an asked number not among them was deleted."""
        for seq in asked:
            self._asked.discard(seq)
            row = rows.get(seq)
            if row is None:
                self._gone.add(seq)
            else:
                self._remember(row)
            self._strips.pop(seq, None)
        self.refresh()

    def rows_failed(self, asked: list[int]) -> None:
        """The store could not be read: ask again when they are next drawn."""
        self._asked.difference_update(asked)

    def render_lines(self, crop):  # noqa: ANN001, ANN201 - as Widget.render_lines
        # One read for every row on screen, columns sized for what they show, styles looked up once.
        visible = self._visible_rows()
        seq_width = len(str(self.index.newest or 0))
        time_width = max((len(row_cells(row, with_ms=True)["time"][0][0]) for row in visible if row), default=12)
        columns = plan_columns(self.scrollable_content_region.width, seq_width, time_width)
        if columns != self._columns:
            self._columns = columns
            self._strips.clear()
        base = self.rich_style
        self._styles = {name: base + self.get_component_rich_style(f"delivery-list--{name}")
                        for name in ("header", "cursor", "even")}
        self._styles["base"] = base
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        styles = self._styles
        if y == 0:
            text = Text(" ").join(_fit(Text(c.label), c.width) for c in self._columns)
            return self._strip(text, width, styles["header"])
        position = int(self.scroll_y) + y - 1
        if position >= len(self.index):
            return Strip.blank(width, styles["base"])
        seq = self.index[position]
        style = styles["cursor"] if position == self.cursor else styles["even"] if position % 2 else styles["base"]
        strip = self._strips.get(seq)
        if strip is None:
            row = self._rows.get(seq)
            if row is None:  # asked for (render_lines): drawn when it arrives
                gone = seq in self._gone
                return self._strip(Text(f"  #{seq} (deleted)" if gone else f"  #{seq} …", style="dim"), width, style)
            strip = Strip(list(self._row_text(row).render(self.app.console)))
            self._strips[seq] = strip
            while len(self._strips) > _STRIP_CACHE:
                self._strips.popitem(last=False)
        return strip.apply_style(style).crop_extend(0, width, style)

    def _row_text(self, row: DeliveryRow) -> Text:
        cells = row_cells(row, with_ms=True)
        parts = []
        for column in self._columns:
            if column.key == "mark":
                cell = Text(MARK if row.seq in self.marked else " ", style="bold yellow")
            else:
                cell = Text.assemble(*cells[column.key])
            parts.append(_fit(cell, column.width))
        text = Text(" ").join(parts)
        text.no_wrap = True
        text.end = ""
        return text

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        text.no_wrap = True
        text.end = ""
        return Strip(list(text.render(self.app.console))).apply_style(style).crop_extend(0, width, style)
