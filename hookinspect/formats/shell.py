"""The one door for untrusted text into a shell command: `shell_quote`.

Printable text is quoted as POSIX shells read it (`shlex.quote`). Anything with a control
character, a C1 or bidirectional-override code point, or a raw byte kept by surrogateescape
is written as bash's `$'...'` with escapes, so the command shows no raw control bytes on a
terminal, and pasting it sends exactly the captured bytes.
"""

from __future__ import annotations

import shlex

# Code points a terminal would act on or that reorder what it shows.
_BIDI = frozenset({0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069})


def _needs_escapes(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or ord(c) in _BIDI or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    if ch in "\\'":
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if 0xDC80 <= code <= 0xDCFF:  # a raw byte (surrogateescape): the byte itself
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0x80 <= code < 0xA0 or code in _BIDI or 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"  # bash writes the UTF-8 encoding of the code point
    return ch


def shell_quote(arg: str) -> str:
    """One shell word that means exactly `arg`, with no raw control characters in it."""
    if not _needs_escapes(arg):
        return shlex.quote(arg)
    return "$'" + "".join(_escaped(ch) for ch in arg) + "'"
