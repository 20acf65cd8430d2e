"""Rich renderings of deliveries and attempts; captured bytes only ever as escaped Text."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from hookinspect.body import NOT_JSON, escape_controls, hexdump, looks_binary
from hookinspect.cli.output import human_size, safe_text
from hookinspect.diff import Change
from hookinspect.model import Attempt, Delivery, Message
from hookinspect.store.sqlite import DeliveryRow

# Pretty-printing a multi-megabyte body helps nobody in a terminal; `show --raw` has it all.
PRETTY_LIMIT = 256 * 1024


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


VERDICT_STYLES = {"valid": "green", "invalid": "bold red", "expired": "yellow", "malformed": "red",
                  "unsigned": "dim", "no-secret": "dim"}


def short_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `json`: room for the columns that matter."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return "form"
    return mime.split("/", 1)[-1] if mime.startswith(("application/", "text/")) else mime


def deliveries_table(rows: Iterable[DeliveryRow]) -> Table:
    """The `ls` table; signature and attempt columns appear only when some row has them."""
    rows = list(rows)
    has_sig = any(r.verdict for r in rows)
    has_last = any(r.last_outcome for r in rows)
    has_event = any(r.provider for r in rows)
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("path", overflow="fold", ratio=3, min_width=12)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True, max_width=12)
    if has_event:
        table.add_column("event", overflow="fold", ratio=2, min_width=12)
    if has_sig:
        table.add_column("sig", no_wrap=True)
    if has_last:
        table.add_column("last", no_wrap=True)
    for row in rows:
        target = row.path + (f"?{row.query}" if row.query else "")
        cells: list[RenderableType] = [
            str(row.seq), local_time(row.received_us, with_ms=False),
            safe_text(row.method, "bold"), safe_text(target), human_size(row.size), safe_text(short_type(row.content_type)),
        ]
        if has_event:
            cells.append(safe_text(" ".join(x for x in (row.provider, row.event_type) if x)))
        if has_sig:
            cells.append(Text(row.verdict or "", style=VERDICT_STYLES.get(row.verdict or "", "")))
        if has_last:
            last = row.last_outcome or ""
            if last and row.last_latency_ms is not None:
                last += f" {row.last_latency_ms:.0f}ms"
            cells.append(Text(last, style=status_style(row.last_outcome)))
        table.add_row(*cells)
    return table


def headers_table(pairs: Iterable[tuple[str, str]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in pairs:
        table.add_row(safe_text(name, "cyan"), safe_text(value))
    return table


# Arrays longer than this are folded in the pretty JSON view (the TUI's `A` unfolds them).
FOLD_ARRAY_OVER = 50
FOLD_ARRAY_KEEP = 10


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


def body_view(message: Message, limit: int = PRETTY_LIMIT, fold_arrays: bool = True) -> RenderableType:
    """JSON pretty-printed, form fields as a table, text as text, binary as a hexdump (first `limit` bytes)."""
    if not message.body:
        return Text("(empty body)", style="dim")
    decoded = message.decoded()
    notes: list[str] = []
    if decoded.encodings:
        notes.append(f"decoded from {'+'.join(decoded.encodings)}, {human_size(len(message.body))} on the wire")
    if decoded.truncated:
        notes.append(f"decoded view cut at {human_size(len(decoded.data))}")
    if decoded.error:
        notes.append(f"could not decode: {decoded.error}; showing the raw bytes")
    header = Text("; ".join(notes), style="dim") if notes else None
    data = decoded.data
    parts: list[RenderableType] = [header] if header else []
    if len(data) > limit:
        parts.append(Text(f"body of {human_size(len(data))}: first {human_size(limit)} shown", style="dim"))
        data = data[:limit]
    form = message.form()
    document = message.json() if len(decoded.data) <= limit else NOT_JSON
    if document is not NOT_JSON:
        if fold_arrays:
            document = fold_long_arrays(document)
        pretty = json.dumps(document, indent=2, ensure_ascii=False)
        parts.append(Syntax(escape_controls(pretty), "json", theme="ansi_dark", word_wrap=True, background_color="default"))
    elif form is not None:
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("field", style="cyan")
        table.add_column("value", overflow="fold")
        for name, value in form:
            table.add_row(safe_text(name, "cyan"), safe_text(value))
        parts.append(table)
    elif looks_binary(data):
        parts.append(Text(hexdump(data, limit)))
    else:
        parts.append(safe_text(message.text() if len(decoded.data) <= limit else data.decode("utf-8", "replace")))
    return Group(*parts)


def delivery_detail(delivery: Delivery, attempt: Attempt | None = None, body_limit: int = PRETTY_LIMIT,
                    fold_arrays: bool = True) -> RenderableType:
    line = Text.assemble(
        (f"#{delivery.seq}  ", "bold"), (escape_controls(delivery.method), "bold magenta"), " ",
        safe_text(delivery.target), f"  HTTP/{delivery.http_version}",
    )
    meta = Text(
        f"received {local_time(delivery.received_us, with_date=True)} ({delivery.received_at})"
        f" from {delivery.remote_addr or '?'} · {human_size(delivery.size)} · id {delivery.id}",
        style="dim",
    )
    parts: list[RenderableType] = [line, meta]
    if delivery.provider or delivery.verdict:
        sig = Text("provider ", style="dim") + safe_text(delivery.provider or "?")
        if delivery.event_type:
            sig += Text("  event ", style="dim") + safe_text(delivery.event_type)
        if delivery.verdict:
            sig += Text("  signature ", style="dim") + Text(delivery.verdict, style=VERDICT_STYLES.get(delivery.verdict, ""))
            if delivery.verdict_reason:
                sig += Text(": ") + safe_text(delivery.verdict_reason)
        parts.append(sig)
    parts += [Text(""), Text("Headers", style="bold underline"), headers_table(delivery.headers),
              Text(""), Text("Body", style="bold underline"), body_view(delivery, body_limit, fold_arrays)]
    if attempt is not None:
        parts += [Text(""), Text("Latest attempt", style="bold underline"), attempt_summary(attempt)]
    return Group(*parts)


def attempt_summary(attempt: Attempt) -> RenderableType:
    outcome = Text(attempt.outcome, style=status_style(attempt.outcome))
    line = Text.assemble(f"{attempt.number or ''} {attempt.kind} → ", safe_text(attempt.target_url), "  ", outcome)
    if attempt.latency_ms is not None:
        line += Text(f"  {attempt.latency_ms:.1f} ms", style="dim")
    parts: list[RenderableType] = [line]
    if attempt.error_message:
        parts.append(safe_text(attempt.error_message, "red"))
    if attempt.response is not None and not attempt.is_success and attempt.response.body:
        parts.append(body_view(attempt.response))
    return Group(*parts)


def attempts_table(attempts: Iterable[Attempt]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("n", "time", "kind", "target", "outcome", "latency", "error"):
        table.add_column(name, justify="right" if name in ("n", "latency") else "left")
    for attempt in attempts:
        table.add_row(
            str(attempt.number), local_time(attempt.started_us), attempt.kind, safe_text(attempt.target_url),
            Text(attempt.outcome, style=status_style(attempt.outcome)),
            f"{attempt.latency_ms:.1f} ms" if attempt.latency_ms is not None else "",
            safe_text(attempt.error_message or ""),
        )
    return table


KIND_MARKS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow"), "type_changed": ("~", "magenta")}


def _show(value: Any) -> str:
    return escape_controls(json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value),
                           keep_newlines=False)


def render_changes(changes: list[Change], side_by_side: bool, labels: tuple[str, str]) -> RenderableType:
    if not changes:
        return Text("no differences", style="green")
    if side_by_side:
        table = Table(header_style="bold", pad_edge=False, show_lines=False)
        table.add_column("path", style="cyan", overflow="fold")
        table.add_column(labels[0], overflow="fold")
        table.add_column(labels[1], overflow="fold")
        for change in changes:
            table.add_row(safe_text(change.path), Text(_show(change.old) if change.kind != "added" else "", style="red"),
                          Text(_show(change.new) if change.kind != "removed" else "", style="green"))
        return table
    lines: list[RenderableType] = []
    for change in changes:
        mark, style = KIND_MARKS.get(change.kind, ("~", "yellow"))
        line = Text(f"{mark} ", style=f"bold {style}") + safe_text(change.path, "cyan")
        if change.kind == "added":
            line += Text(": ") + Text(_show(change.new), style="green")
        elif change.kind == "removed":
            line += Text(": ") + Text(_show(change.old), style="red")
        else:
            line += Text(": ") + Text(_show(change.old), style="red") + Text(" → ") + Text(_show(change.new), style="green")
            if change.kind == "type_changed":
                line += Text(" (type changed)", style="dim")
        lines.append(line)
        if change.detail:
            lines.append(Syntax(escape_controls(change.detail), "diff", theme="ansi_dark", background_color="default"))
    return Group(*lines)
