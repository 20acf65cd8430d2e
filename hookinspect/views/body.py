"""The body view: JSON pretty-printed and coloured, form fields aligned, text as text, binary
as a hexdump; what was decoded (gzip, br) or cut is said first."""

from __future__ import annotations

import json
import re
from typing import Any

from hookinspect.body import NOT_JSON, escape_controls, hexdump, looks_binary
from hookinspect.model import Message
from hookinspect.views.text import Line, aligned, escaped_spans, human_size, safe

# Pretty-printing a multi-megabyte body helps nobody in a terminal; `show --raw` has it all.
PRETTY_LIMIT = 256 * 1024
# Arrays longer than this are folded in the pretty JSON view (the TUI's `A` unfolds them).
FOLD_ARRAY_OVER = 50
FOLD_ARRAY_KEEP = 10

_JSON_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d[\d.eE+-]*)|(true|false|null)|([^"\d\-tfn]+|.)')
JSON_STYLES = {"key": "bold blue", "string": "green", "number": "cyan", "literal": "magenta", "punctuation": ""}


def fold_long_arrays(document: Any) -> Any:
    """A copy where arrays over FOLD_ARRAY_OVER items keep their first ones and say how many follow."""
    if isinstance(document, list):
        items = [fold_long_arrays(x) for x in document[:FOLD_ARRAY_KEEP if len(document) > FOLD_ARRAY_OVER else None]]
        if len(document) > FOLD_ARRAY_OVER:
            items.append(f"… {len(document) - FOLD_ARRAY_KEEP} more items (folded)")
        return items
    if isinstance(document, dict):
        return {k: fold_long_arrays(v) for k, v in document.items()}
    return document


def json_lines(pretty: str) -> list[Line]:
    """Pretty-printed JSON as coloured lines; every token's text escaped for the terminal."""
    out: list[Line] = []
    for raw_line in pretty.split("\n"):
        line: Line = []
        for match in _JSON_TOKEN.finditer(raw_line):
            string, colon, number, literal, other = match.groups()
            if string is not None:
                line.append((escape_controls(string), JSON_STYLES["key" if colon else "string"]))
                if colon:
                    line.append((colon, ""))
            elif number is not None:
                line.append((number, JSON_STYLES["number"]))
            elif literal is not None:
                line.append((literal, JSON_STYLES["literal"]))
            else:
                line.append((escape_controls(other), ""))
        out.append(line)
    return out


def _pretty_json(document: Any, fold_arrays: bool) -> str | None:
    """The indented JSON text, or None when it nests too deep to walk (a hostile body can)."""
    try:
        if fold_arrays:
            document = fold_long_arrays(document)
        return json.dumps(document, indent=2, ensure_ascii=False)
    except RecursionError:
        return None


def body_lines(message: Message, limit: int = PRETTY_LIMIT, fold_arrays: bool = True) -> list[Line]:
    """The body as lines (first `limit` bytes of its decoded form)."""
    if not message.body:
        return [[("(empty body)", "dim")]]
    decoded = message.decoded()
    notes: list[str] = []
    if decoded.encodings:
        notes.append(f"decoded from {'+'.join(decoded.encodings)}, {human_size(len(message.body))} on the wire")
    if decoded.truncated:
        notes.append(f"decoded view cut at {human_size(len(decoded.data))}")
    if decoded.error:
        notes.append(f"could not decode: {escape_controls(decoded.error)}; showing the raw bytes")
    data = decoded.data
    if len(data) > limit:
        notes.append(f"body of {human_size(len(data))}: first {human_size(limit)} shown")
        data = data[:limit]
    document = message.json() if len(decoded.data) <= limit else NOT_JSON
    pretty = _pretty_json(document, fold_arrays) if document is not NOT_JSON else None
    if document is not NOT_JSON and pretty is None:
        notes.append("JSON nested too deep to pretty-print; shown as text")
    lines: list[Line] = [[("; ".join(notes), "dim")]] if notes else []
    form = message.form() if pretty is None else None
    if pretty is not None:
        lines += json_lines(pretty)
    elif form is not None:
        lines += aligned([(safe(name, "cyan", keep_newlines=False), safe(value, keep_newlines=False)) for name, value in form])
    elif looks_binary(data):
        lines += [[(row, "")] for row in hexdump(data, limit).split("\n")]
    else:
        text = message.text() if len(decoded.data) <= limit else data.decode("utf-8", "replace")
        lines += [escaped_spans(row) for row in text.split("\n")]
    return lines
