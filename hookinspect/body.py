"""Views of raw body bytes: text, JSON, form fields, decompressed content, hexdump.

The stored bytes are never changed; every view is computed on demand and never raises.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import brotli

# A decoded view larger than this is cut: a 1 MiB gzip bomb inflates to 1 GiB, and a
# viewer must not try to hold that in memory.
DECODED_VIEW_LIMIT = 16 * 1024 * 1024

# Sentinel for "the body is not JSON" (a JSON body may legitimately be `null`).
NOT_JSON: Any = object()


@dataclass(frozen=True)
class ContentType:
    mime: str
    params: dict[str, str]

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")


def parse_content_type(value: str | None) -> ContentType:
    """Split a Content-Type header into a lower-case mime type and its parameters."""
    if not value:
        return ContentType("", {})
    mime, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, eq, val = part.partition("=")
        if eq:
            params[key.strip().lower()] = val.strip().strip('"')
    return ContentType(mime.strip().lower(), params)


@dataclass(frozen=True)
class DecodedBody:
    data: bytes
    encodings: tuple[str, ...]  # the Content-Encoding steps that were undone
    truncated: bool = False
    error: str | None = None


def decode_content(body: bytes, content_encoding: str | None, limit: int = DECODED_VIEW_LIMIT) -> DecodedBody:
    """Undo gzip/deflate/br Content-Encoding, capped at `limit` bytes of output."""
    steps = [s.strip().lower() for s in (content_encoding or "").split(",") if s.strip()]
    steps = [s for s in steps if s != "identity"]
    data = body
    done: list[str] = []
    # Encodings are listed in the order they were applied, so they are undone in reverse.
    for step in reversed(steps):
        try:
            data, truncated = _decompress(step, data, limit)
        except ValueError as exc:
            return DecodedBody(data, tuple(done), error=str(exc))
        done.append(step)
        if truncated:
            return DecodedBody(data, tuple(done), truncated=True)
    return DecodedBody(data, tuple(done))


def _decompress(encoding: str, data: bytes, limit: int) -> tuple[bytes, bool]:
    if encoding in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, auto-detected
        try:
            return _zlib_inflate(data, wbits, limit)
        except zlib.error:
            if encoding == "deflate":  # some senders send raw deflate without a zlib header
                try:
                    return _zlib_inflate(data, -15, limit)
                except zlib.error as exc:
                    raise ValueError(f"corrupt deflate data: {exc}") from None
            raise ValueError(f"corrupt {encoding} data") from None
    if encoding == "br":
        try:
            decompressor = brotli.Decompressor()
            out = decompressor.process(data, output_buffer_limit=limit + 1)
        except brotli.error as exc:
            raise ValueError(f"corrupt br data: {exc}") from None
        return out[:limit], len(out) > limit
    raise ValueError(f"unsupported content-encoding {encoding!r}")


def _zlib_inflate(data: bytes, wbits: int, limit: int) -> tuple[bytes, bool]:
    decompressor = zlib.decompressobj(wbits)
    out = decompressor.decompress(data, limit + 1)
    if len(out) > limit:
        return out[:limit], True
    if not decompressor.eof and not decompressor.unconsumed_tail:
        raise zlib.error("truncated stream")
    return out, False


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Text that never raises: unknown charsets fall back to UTF-8, bad bytes become U+FFFD."""
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def is_valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def looks_binary(data: bytes) -> bool:
    """Bytes that are not UTF-8 text, or text full of control characters."""
    if not data:
        return False
    if not is_valid_utf8(data):
        return True
    sample = data[:4096]
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 13, 27))
    return controls > len(sample) // 10 or b"\x00" in sample


def parse_json(data: bytes) -> Any:
    """The parsed JSON value, or NOT_JSON when the bytes are not a JSON document."""
    if not data or data[:1] not in b'{["-0123456789tfn \t\r\n\xef':
        return NOT_JSON
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return NOT_JSON


def parse_form(data: bytes, charset: str | None = None) -> list[tuple[str, str]]:
    """Form fields in order, duplicates kept."""
    return parse_qsl(decode_text(data, charset), keep_blank_values=True)


def hexdump(data: bytes, limit: int = 4096) -> str:
    """Classic 16-bytes-a-line hexdump with a printable-ASCII column."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexpart:<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines)


def encode_body_fields(data: bytes) -> dict[str, str]:
    """`{"body_text": ...}` for UTF-8 bodies, `{"body_base64": ...}` otherwise: byte-exact JSON."""
    if is_valid_utf8(data):
        return {"body_text": data.decode("utf-8")}
    return {"body_base64": base64.b64encode(data).decode("ascii")}


def decode_body_fields(obj: dict[str, Any]) -> bytes:
    """Inverse of encode_body_fields."""
    if "body_base64" in obj and obj["body_base64"] is not None:
        return base64.b64decode(obj["body_base64"], validate=True)
    text = obj.get("body_text") or ""
    return text.encode("utf-8", errors="surrogateescape")


# Bidirectional overrides can reorder what a terminal shows; they are escaped like controls.
_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}


# What JSON leaves raw in strings but a terminal acts on: DEL, C1 controls, bidi overrides.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def json_text(data: Any, indent: int | None = 2) -> str:
    """JSON that shows no control character on a terminal and reads back to the same data:
    JSON itself escapes C0; DEL, C1 and bidi overrides are written as \\u escapes too."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


# Everything escape_controls changes: a text without any of it is returned as it is, at C speed.
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """escape_controls keeping newlines, with a fast path for the usual text that has nothing to escape."""
    return escape_controls(text) if _TERMINAL_UNSAFE.search(text) else text


# XML 1.0 cannot hold C0 controls but tab and newline, nor U+FFFE/U+FFFF: not even as &#x1b;.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]")


def xml_safe(text: str) -> str:
    """Text any XML 1.0 parser reads back: what XML cannot hold (and what a terminal would act on
    when the report is printed) becomes a visible escape such as \\x1b."""
    return _XML_UNSAFE.sub(lambda match: escape_controls(match.group()) if match.group() not in "\ufffe\uffff"
                           else f"\\u{ord(match.group()):04x}", text)


def escape_controls(text: str, keep_newlines: bool = True) -> str:
    """Make captured text safe for a terminal: control characters become visible escapes.

    ESC, CSI (0x9b), BEL, backspace and friends would otherwise drive the terminal; tabs and
    (optionally) newlines are kept. Surrogate-escaped bytes are shown as \\xNN.
    """
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\t" or (keep_newlines and ch == "\n"):
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # a raw byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code in _BIDI or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
