"""Export formats: pure functions in a registry, `items -> str | bytes`.

Every exporter takes deliveries (with their attempts) and options as arguments and
returns text or bytes; nothing here reads global settings. Shell arguments are always
quoted by `views.shell.shell_quote` (control characters as `$'...'` escapes, never raw), and
bodies that are not UTF-8 travel through base64, never as a broken string.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hookinspect.body import is_valid_utf8, json_text
from hookinspect.errors import UsageError
from hookinspect.formats.fixtures import expectation_from, fixture_document
from hookinspect.formats.har import render_har
from hookinspect.formats.redaction import DEFAULT_REDACTION, Redaction, redact_item
from hookinspect.formats.shell import shell_quote
from hookinspect.formats.targets import HOP_BY_HOP, target_url
from hookinspect.model import Delivery, ExportItem
from hookinspect.private_files import write_private

__all__ = ["EXPORTERS", "ExportItem", "export"]


def _send_headers(delivery: Delivery, drop_host: bool) -> list[tuple[str, str]]:
    skip = set(HOP_BY_HOP) | {"content-length"} | ({"host"} if drop_host else set())
    return [(k, v) for k, v in delivery.headers if k.lower() not in skip]


# A body larger than this goes through a here-document: one command-line argument is limited
# to 128 KiB on Linux ("Argument list too long"), and a long one is unreadable anyway.
MAX_INLINE_BODY = 64 * 1024
# Ends a body's here-document; base64 never writes an underscore, so no body line can equal it.
BODY_DELIMITER = "HOOKINSPECT_BODY"


def render_curl(items: list[ExportItem], to: str | None = None) -> str:
    """One curl command per delivery that sends the same method, headers and body bytes.

    `--globoff` keeps `[]{}` in a query literal; curl's own User-Agent, Accept and (for a body)
    Content-Type are switched off when the sender sent none, so no header is added.
    """
    commands = []
    for item in items:
        d = item.delivery
        url = target_url(to, d.path, d.query) if to else d.original_url()
        args = ["curl", "-sS", "--globoff", "-X", d.method, url]
        present = {k.lower() for k, _ in d.headers}
        for name, value in _send_headers(d, drop_host=bool(to)):
            args += ["-H", f"{name}: {value}" if value else f"{name};"]
        added_by_curl = ("User-Agent", "Accept", "Content-Type") if d.body else ("User-Agent", "Accept")
        args += [arg for default in added_by_curl if default.lower() not in present for arg in ("-H", f"{default}:")]
        if d.body and _is_inline_text(d.body) and len(d.body) <= MAX_INLINE_BODY:
            args += ["--data-binary", d.body.decode()]
            commands.append(" ".join(shell_quote(a) for a in args))
        elif d.body:
            # Through a here-document in base64: any size (no argument-length limit), byte-exact
            # (a here-document's own last newline is not part of the body), nothing a terminal acts on.
            encoded = base64.encodebytes(d.body).decode()
            args += ["--data-binary", "@-"]
            commands.append(f"base64 -d <<'{BODY_DELIMITER}' | " + " ".join(shell_quote(a) for a in args)
                            + f"\n{encoded}{BODY_DELIMITER}")
        else:
            commands.append(" ".join(shell_quote(a) for a in args))
    return "\n".join(commands) + "\n"


def _is_inline_text(body: bytes) -> bool:
    """A body curl can take as an argument: UTF-8 without NUL, and not `@…` (curl would read a file)."""
    return is_valid_utf8(body) and b"\0" not in body and not body.startswith(b"@")


def render_httpie(items: list[ExportItem], to: str | None = None) -> str:
    """HTTPie commands; the body always goes through stdin so it is sent as-is."""
    commands = []
    for item in items:
        d = item.delivery
        url = target_url(to, d.path, d.query) if to else d.original_url()
        args = ["http", "--ignore-stdin" if not d.body else "", d.method, url]
        args = [a for a in args if a]
        present = {k.lower() for k, _ in d.headers}
        for name, value in _send_headers(d, drop_host=bool(to)):
            args.append(f"{name}:{value}" if value else f"{name};")
        for default in ("User-Agent", "Accept", "Accept-Encoding"):
            if default.lower() not in present:
                args.append(f"{default}:")
        line = " ".join(shell_quote(a) for a in args)
        if d.body:
            line = f"printf '%s' {base64.b64encode(d.body).decode()} | base64 -d | {line}"
        commands.append(line)
    return "\n".join(commands) + "\n"


def render_raw(items: list[ExportItem], to: str | None = None) -> bytes:
    """The HTTP/1.1 request as it arrived: a chunked body as one chunk, with its trailer fields
    after it (the chunk boundaries the sender chose are not kept)."""
    out = bytearray()
    for item in items:
        d = item.delivery
        out += f"{d.method} {d.target} HTTP/{d.http_version}\r\n".encode("utf-8", "surrogateescape")
        chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in d.headers)
        for name, value in d.headers.raw():
            out += name + b": " + value + b"\r\n"
        out += b"\r\n"
        if not chunked:
            out += d.body
            continue
        if d.body:
            out += b"%x\r\n" % len(d.body) + d.body + b"\r\n"
        out += b"0\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in d.trailers.raw()) + b"\r\n"
    return bytes(out)


def render_json(items: list[ExportItem], to: str | None = None) -> str:
    """The `show --json` shape, one object per delivery, as a JSON array."""
    data = []
    for item in items:
        obj = item.delivery.to_dict()
        obj["attempts"] = [a.to_dict() for a in item.attempts]
        data.append(obj)
    return json_text(data) + "\n"


def render_fixture(items: list[ExportItem], to: str | None = None, with_json: bool = False) -> str:
    """A fixture file (formats/fixtures.py): requests plus expectations the answers agreed on."""
    records = []
    for item in items:
        records.append((item.delivery, expectation_from(item.attempts, with_json)))
    return fixture_document(records)


@dataclass(frozen=True)
class Exporter:
    render: Callable[..., str | bytes]
    redact_by_default: bool
    extension: str


EXPORTERS: dict[str, Exporter] = {
    "curl": Exporter(render_curl, False, "sh"),
    "httpie": Exporter(render_httpie, False, "sh"),
    "raw": Exporter(render_raw, False, "http"),
    "har": Exporter(render_har, True, "har"),
    "json": Exporter(render_json, True, "json"),
    "fixture": Exporter(render_fixture, True, "json"),
}


def export(items: list[ExportItem], fmt: str, *, to: str | None = None, redact_secrets: bool | None = None,
           rules: Redaction = DEFAULT_REDACTION, **format_options: Any) -> tuple[str | bytes, list[str]]:
    """Render `items` in `fmt`; returns the output and what was masked."""
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise UsageError(f"unknown format {fmt!r}", "choose one of " + ", ".join(EXPORTERS))
    masked: list[str] = []
    if redact_secrets if redact_secrets is not None else exporter.redact_by_default:
        redacted = []
        for item in items:
            clean, what = redact_item(item, rules)
            masked += [f"#{item.delivery.seq} {w}" for w in what]
            redacted.append(clean)
        items = redacted
    return exporter.render(items, to, **format_options), masked


def export_path(destination: Path, fmt: str, now: datetime | None = None) -> Path:
    """Where an export goes: `destination` itself, or a timestamped file in it when it is a directory."""
    if destination.is_dir():
        moment = now or datetime.now()
        return destination / f"hookinspect-{moment:%Y%m%d-%H%M%S}.{EXPORTERS[fmt].extension}"
    return destination


def write_export(items: list[ExportItem], fmt: str, destination: Path, **options: Any) -> tuple[Path, list[str]]:
    """Render `items` (see `export`) into a file; returns the file written and what was masked."""
    rendered, masked = export(items, fmt, **options)
    data = rendered if isinstance(rendered, bytes) else rendered.encode("utf-8", "surrogateescape")
    path = export_path(destination, fmt)
    try:
        write_private(path, data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    return path, masked
