"""Commands that read the store: ls, show, attempts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hookinspect.cli.common import (
    FILTER_OPTION,
    JSON_OPTION,
    STORE_OPTION,
    build_filter,
    open_workspace,
    resolve_seqs,
)
from hookinspect.cli.output import Output, add_columns, rich_line
from hookinspect.errors import UsageError
from hookinspect.formats.filters import parse_refs
from hookinspect.store.deliveries import DeliveryRow
from hookinspect.views.delivery import (
    ATTEMPT_COLUMNS,
    REJECTION_COLUMNS,
    attempt_cells,
    delivery_lines,
    queue_lines,
    rejection_cells,
    row_cells,
)

app = typer.Typer()  # this module's commands; cli/app.py gathers them


# Given up in this order when the terminal is too narrow for every column.
_DROPPED_FIRST = ("type", "size", "time", "sig", "last")
_HEADERS = {"seq": "#", "time": "time", "method": "method", "path": "path", "size": "size", "type": "type",
            "event": "event", "sig": "sig", "last": "last"}


def deliveries_table(rows: list[DeliveryRow], width: int = 200) -> Table:
    """The `ls` table for a terminal `width` wide; signature and attempt columns appear only when
    some row has them. Short columns keep their width (low-value ones are dropped first when
    the terminal is narrow); path and event, names, are cut with an ellipsis, never broken."""
    all_cells = [row_cells(row) for row in rows]

    def widest(name: str) -> int:
        return max([len(_HEADERS[name]), *(sum(len(text) for text, _ in cells[name]) for cells in all_cells)])

    columns = ["seq", "time", "method", "path", "size", "type"]
    if any(r.provider for r in rows):
        columns.append("event")
    if any(r.verdict for r in rows):
        columns.append("sig")
    if any(r.last_outcome for r in rows):
        columns.append("last")
    needs = {name: 12 if name in ("path", "event") else min(widest(name), 12 if name == "type" else 99) for name in columns}
    for name in _DROPPED_FIRST:
        if sum(needs[c] for c in columns) + 2 * (len(columns) - 1) <= width:
            break
        if name in columns:
            columns.remove(name)
    shares = _name_widths(columns, needs, widest, width)
    # A cut event name costs more than a low-value column: drop those while it does not fit.
    for name in ("type", "size"):
        if "event" not in shares or shares["event"] >= widest("event"):
            break
        if name in columns:
            columns.remove(name)
            shares = _name_widths(columns, needs, widest, width)
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    for name in columns:
        if name in ("path", "event"):
            table.add_column(_HEADERS[name], no_wrap=True, overflow="ellipsis", width=shares[name])
        else:
            table.add_column(_HEADERS[name], no_wrap=True, overflow="ellipsis", min_width=needs[name],
                             justify="right" if name in ("seq", "size") else "left")
    for cells in all_cells:
        table.add_row(*(rich_line(cells[name]) for name in columns))
    return table


def _name_widths(columns: list[str], needs: dict[str, int], widest, width: int) -> dict[str, int]:  # noqa: ANN001
    """Path and event share what the other columns leave (path the larger part), each at most as
    wide as its longest value: the widths are set here, so rich never squeezes (and crops) one."""
    fixed = sum(needs[c] for c in columns if c not in ("path", "event")) + 2 * (len(columns) - 1)
    room = max(width - fixed, 24)
    if "event" in columns:
        event = min(widest("event"), max(12, room * 2 // 5))
        path = min(widest("path"), max(12, room - event))
        return {"path": path, "event": min(widest("event"), max(event, room - path))}  # slack back to event
    return {"path": min(widest("path"), room)}


def attempts_table(attempts) -> Table:  # noqa: ANN001 - list[Attempt]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ATTEMPT_COLUMNS:
        table.add_column(name, justify="right" if name in ("n", "latency") else "left")
    for attempt in attempts:
        table.add_row(*(rich_line(cell) for cell in attempt_cells(attempt)))
    return table


@app.command("ls")
def list_deliveries(
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many rows. Example: -n 200"),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many newest rows (paging)."),
    filter_expression: str | None = FILTER_OPTION,
    method: list[str] = typer.Option([], "--method", "-m", help="Only this method (repeatable). Example: -m POST"),
    path: str | None = typer.Option(None, "--path", help="Path glob. Example: --path '/stripe/*'"),
    content_type: str | None = typer.Option(None, "--content-type", help="Content type prefix. Example: application/json"),
    since: str | None = typer.Option(None, "--since", help="Received after: 10m, 2h, 3d or an ISO time."),
    until: str | None = typer.Option(None, "--until", help="Received before: 10m, 2h, 3d or an ISO time."),
    search: str | None = typer.Option(None, "--search", "-s", help="Text that must occur in the path or body."),
    provider: str | None = typer.Option(None, "--provider", help="Only this provider. Example: --provider stripe"),
    event: str | None = typer.Option(None, "--event", help="Event type glob. Example: --event 'invoice.*'"),
    verdict: str | None = typer.Option(None, "--verdict", help="Signature verdict: valid, invalid, expired, malformed, unsigned, no-secret."),
    rejected: bool = typer.Option(False, "--rejected", help="List refused requests instead (over a limit, unreadable, cut short): when, from where, why."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """List deliveries, newest first."""
    out = Output()
    flt = build_filter(filter_expression, method, path, content_type, since, until, search, provider, event, verdict)
    if rejected:
        if not flt.is_empty or offset:
            raise UsageError("--rejected lists refused requests: it takes only --limit and --json")
        list_rejected(out, limit, as_json, store_path)
        return
    with open_workspace(store_path) as workspace:
        rows = workspace.store.list(flt, limit=limit, offset=offset)
        if as_json:
            out.json([row.to_dict() for row in rows])
            return
        total = workspace.store.count(flt)
    if not rows:
        if total:
            out.info(f"nothing past the first {total}: --offset {offset} skips them all")
        else:
            out.info("no deliveries match" if not flt.is_empty else "no deliveries yet; send one to `hookinspect listen`")
        return
    out.print(deliveries_table(rows, out.stdout.width))
    if total > len(rows) + offset:
        out.info(f"{len(rows)} of {total} shown; --limit / --offset for more")


def list_rejected(out: Output, limit: int, as_json: bool, store_path: Path | None) -> None:
    with open_workspace(store_path) as workspace:
        kept = workspace.store.rejections(limit=limit)
        total = workspace.store.count_rejections()
    if as_json:
        out.json([rejection.to_dict() for rejection in kept])
        return
    if not kept:
        out.info("no requests were refused")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    add_columns(table, REJECTION_COLUMNS, prose=("reason",))
    for rejection in kept:
        cells = rejection_cells(rejection)
        table.add_row(*(rich_line(cells[name]) for name in REJECTION_COLUMNS))
    out.print(table)
    out.info(f"{total} refused in all (the newest kept, with the start of each request: --json shows it)")


@app.command("show")
def show_delivery(
    ref: str = typer.Argument(..., help="Delivery number or id. Example: 42"),
    raw: bool = typer.Option(False, "--raw", help="Write the exact body bytes to stdout and nothing else."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Show one delivery: request line, headers, body and its latest attempt."""
    out = Output()
    with open_workspace(store_path) as workspace:
        [target] = parse_refs([ref])[:1] or [None]
        if target is None:
            raise UsageError("which delivery? Example: hookinspect show 42")
        delivery = workspace.store.get(target)
        attempts = workspace.store.attempts(delivery.seq)  # type: ignore[arg-type]
        queued = workspace.store.queue_items(("pending", "dead"), seqs=[delivery.seq])  # type: ignore[list-item]
    if raw:
        out.raw(delivery.body)
    elif as_json:
        data = delivery.to_dict()
        data["attempts"] = [a.to_dict() for a in attempts]
        data["queue"] = [item.to_dict() for item in queued]
        out.json(data)
    else:
        out.lines(delivery_lines(delivery, attempts[-1] if attempts else None))
        out.lines(queue_lines(queued))


@app.command("attempts")
def list_attempts(
    ref: str = typer.Argument(..., help="Delivery number or id. Example: 42"),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """List every send (forward, replay, check) of one delivery."""
    out = Output()
    with open_workspace(store_path) as workspace:
        [seq] = resolve_seqs(workspace.store, [ref])[:1]
        workspace.store.get(seq)
        attempts = workspace.store.attempts(seq)
        queued = workspace.store.queue_items(("pending", "dead"), seqs=[seq])
    if as_json:
        out.json([a.to_dict(shown=True) for a in attempts])
    elif not attempts:
        out.info(f"#{seq} has not been sent anywhere yet; `hookinspect replay {seq} --to URL` sends it")
        out.lines(queue_lines(queued))
    else:
        out.print(attempts_table(attempts))
        out.lines(queue_lines(queued))
