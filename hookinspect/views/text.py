"""Styled lines and the small formats every view uses.

A `Line` is a list of `(text, style)` spans; styles are rich style strings ("bold red"),
which a terminal shell applies as they are and a web page maps to classes. Untrusted text
(paths, headers, bodies, a target's answer, what the user typed) enters a span only through
`safe`, which shows control characters as escapes.
"""

from __future__ import annotations

from datetime import datetime

from hookinspect.body import escape_controls
from hookinspect.values import mask_userinfo

Span = tuple[str, str]
Line = list[Span]

VERDICT_STYLES = {"valid": "green", "invalid": "bold red", "expired": "yellow", "malformed": "red",
                  "unsigned": "dim", "no-secret": "dim"}


def safe(value: str | None, style: str = "", *, keep_newlines: bool = True) -> Span:
    """Untrusted text as a span: control characters made visible, never interpreted."""
    return escape_controls(value or "", keep_newlines=keep_newlines), style


def safe_url(url: str | None, style: str = "") -> Span:
    """A URL as every shell shows it: on one line, escaped, its password (`user:***@`) masked."""
    return safe(mask_userinfo(url or ""), style, keep_newlines=False)


# How an escape made by `escaped_spans` looks: a literal "\\x1b" typed in a payload stays plain text.
ESCAPE_STYLE = "reverse"


def escaped_spans(value: str, style: str = "") -> Line:
    """Untrusted text as spans where each control character shown as an escape is styled apart
    (ESCAPE_STYLE), so a real ESC byte and the four characters `\\x1b` do not look the same."""
    spans: Line = []
    plain: list[str] = []
    for ch in value:
        shown = escape_controls(ch)
        if shown == ch:
            plain.append(ch)
            continue
        if plain:
            spans.append(("".join(plain), style))
            plain = []
        spans.append((shown, f"{style} {ESCAPE_STYLE}".strip()))
    if plain or not spans:
        spans.append(("".join(plain), style))
    return spans


def plain_text(lines: list[Line]) -> str:
    """The lines without styles (for tests, logs and plain output)."""
    return "\n".join("".join(text for text, _style in line) for line in lines)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024  # type: ignore[assignment]
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size:.1f} TiB"


def local_time(us: int, with_date: bool = False, with_ms: bool = True) -> str:
    """Local wall-clock time; the date only when it is not today."""
    moment = datetime.fromtimestamp(us / 1_000_000)
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f" if with_date or moment.date() != datetime.now().date() else "%H:%M:%S.%f")
    return text[:-3] if with_ms else text[:-7]


def status_style(outcome: str | None) -> str:
    if outcome is None:
        return "dim"
    if outcome.isdigit():
        code = int(outcome)
        return "green" if code < 300 else "yellow" if code < 400 else "red"
    return "bold red"


def short_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `json`: room for the columns that matter."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return "form"
    return mime.split("/", 1)[-1] if mime.startswith(("application/", "text/")) else mime


def aligned(rows: list[tuple[Span, Span]], max_width: int = 32) -> list[Line]:
    """Two columns as lines, the first padded to the widest entry (at most `max_width`)."""
    width = min(max((len(name) for (name, _style), _value in rows), default=0), max_width)
    return [[(name.ljust(width), style), ("  ", ""), value] for (name, style), value in rows]


def cut_long_lines(lines: list[Line], width: int) -> list[Line]:
    """Lines over `width` characters cut into several (a 5 MB one-line body stays drawable)."""
    out: list[Line] = []
    for line in lines:
        if sum(len(text) for text, _ in line) <= width:
            out.append(line)
            continue
        piece: Line = []
        room = width
        for text, style in line:
            while text:
                part, text = text[:room], text[room:]
                piece.append((part, style))
                room -= len(part)
                if room == 0:
                    out.append(piece)
                    piece, room = [], width
        if piece:
            out.append(piece)
    return out


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 change`, `2 changes`: a count with its noun in the right number."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
