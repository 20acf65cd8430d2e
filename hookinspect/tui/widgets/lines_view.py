"""A scrollable view of styled lines that draws only the lines on screen.

A body pretty-printed to 40,000 lines costs what the 40 visible ones cost to draw; the lines
themselves are computed off the UI thread (see the app's detail worker).
"""

from __future__ import annotations

from collections import OrderedDict

from rich.segment import Segment
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from hookinspect.views.text import Line, plain_text

# Strips kept once drawn (scrolling back is free).
_STRIP_CACHE = 500


class LinesView(ScrollView, can_focus=True):
    """Lines of (text, style) spans, already escaped: never parsed as markup."""

    DEFAULT_CSS = """
    LinesView { background: $surface; padding: 0 1; }
    """

    def __init__(self, lines: list[Line] | None = None, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self._lines: list[Line] = []
        self._strips: OrderedDict[int, Strip] = OrderedDict()
        if lines is not None:
            self.set_lines(lines)

    @property
    def lines(self) -> list[Line]:
        return self._lines

    @property
    def plain(self) -> str:
        """What the user reads (for tests and copying)."""
        return plain_text(self._lines)

    def set_lines(self, lines: list[Line], *, keep_scroll: bool = False) -> None:
        self._lines = lines
        self._strips.clear()
        width = max((sum(len(text) for text, _ in line) for line in lines), default=0)
        self.virtual_size = Size(width, len(lines))
        if not keep_scroll:
            self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, style)
        strip = self._strips.get(index)
        if strip is None:
            text = Text.assemble(*((span.replace("\n", "↵"), span_style) for span, span_style in self._lines[index]),
                                 no_wrap=True, end="")
            strip = Strip([Segment(seg.text, style + seg.style if seg.style else style)
                           for seg in text.render(self.app.console)])
            self._strips[index] = strip
            while len(self._strips) > _STRIP_CACHE:
                self._strips.popitem(last=False)
        else:
            self._strips.move_to_end(index)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def on_resize(self) -> None:
        self._strips.clear()
