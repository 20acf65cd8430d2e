"""diff: two deliveries, a new answer against the recorded one, or two targets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from hookinspect.cli.common import (
    FILTER_OPTION,
    INSECURE_OPTION,
    JSON_OPTION,
    SECRET_OPTION,
    STORE_OPTION,
    build_filter,
    gather_secrets,
    open_workspace,
    resolve_seqs,
    select_seqs,
)
from hookinspect.cli.output import Output, add_columns, rich_lines, safe_text
from hookinspect.config import Settings
from hookinspect.errors import EXIT_FAILED, UsageError
from hookinspect.formats.diff import Change, DiffOptions, diff_deliveries
from hookinspect.send.answers import AnswerDiff, diff_answers
from hookinspect.signing.registry import resigner_for
from hookinspect.views.delivery import change_lines, shown_value
from hookinspect.views.text import status_style

app = typer.Typer()  # this module's commands; cli/app.py gathers them


def render_changes(changes: list[Change], side_by_side: bool, labels: tuple[str, str]) -> RenderableType:
    """Changes as `~ path: old → new` lines, or with --side-by-side a table of path, old, new."""
    if not side_by_side or not changes:
        return rich_lines(change_lines(changes))
    table = Table(header_style="bold", pad_edge=False, show_lines=False)
    table.add_column("path", style="cyan", overflow="fold")
    table.add_column(labels[0], overflow="fold")
    table.add_column(labels[1], overflow="fold")
    for change in changes:
        table.add_row(safe_text(change.path), Text(shown_value(change.old) if change.kind != "added" else "", style="red"),
                      Text(shown_value(change.new) if change.kind != "removed" else "", style="green"))
    return table


def summary_table(results: list[AnswerDiff]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    add_columns(table, ("#", "a", "b", "changes", "first change"), right=("#", "changes"), prose=("first change",))
    for result in sorted(results, key=lambda r: r.seq):
        a = result.a.outcome if result.a else "-"
        b = result.b.outcome if result.b else "-"
        first = result.error or (f"{result.changes[0].kind} {result.changes[0].path}" if result.changes else "")
        table.add_row(str(result.seq), Text(a, style=status_style(a)), Text(b, style=status_style(b)),
                      str(len(result.changes)) if not result.error else "?", safe_text(first))
    return table


@app.command("diff")
def diff_command(
    refs: list[str] = typer.Argument(None, help="Two deliveries (41 42), one with --previous or --to. Example: 41 42"),
    previous: bool = typer.Option(False, "--previous", "-p", help="Compare with the previous delivery of the same event. Example: diff 42 --previous"),
    to: str | None = typer.Option(None, "--to", help="Replay to this URL and compare its answer. Example: --to http://localhost:3000/"),
    against: str | None = typer.Option(None, "--against", help="Also send to this URL and compare the two answers."),
    event: str | None = typer.Option(None, "--event", help="A set: every delivery of these events (glob). Example: --event 'invoice.*'"),
    filter_expression: str | None = FILTER_OPTION,
    last: int | None = typer.Option(None, "--last", min=1, help="A set: the newest N deliveries."),
    ignore: list[str] = typer.Option([], "--ignore", "-i", help="Paths or globs to ignore (repeatable). Example: -i body.created -i 'body.**.id'"),
    default_ignores: bool = typer.Option(True, "--default-ignores/--no-default-ignores", help="Ignore volatile headers (Date, Server, request ids, signatures)."),
    array_key: str | None = typer.Option(None, "--array-key", help="Match array items by this field. Example: --array-key id"),
    header_order: bool = typer.Option(False, "--header-order", help="Report a change in header order too."),
    side_by_side: bool = typer.Option(False, "--side-by-side", "-y", help="A table of path, old, new."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=256, help="Sends at once for sets."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds per send."),
    secret: list[str] = SECRET_OPTION,
    insecure: bool = INSECURE_OPTION,
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Compare two deliveries, or a backend's answer with the recorded one or another backend's."""
    out = Output()
    configured = Settings().table("diff") or {}
    options = DiffOptions(ignore=[*(configured.get("ignore") or []), *ignore], use_default_ignores=default_ignores,
                          array_key=array_key or configured.get("array_key"), header_order=header_order)
    refs = refs or []
    flt = build_filter(filter_expression, event=event)
    is_set = not flt.is_empty or last is not None
    if to is None:
        if against is not None or is_set or len(refs) != (1 if previous else 2):
            raise UsageError("give two deliveries (diff 41 42), one with --previous, or --to URL to compare a backend's answers")
        with open_workspace(store_path) as workspace:
            store = workspace.store
            seqs = resolve_seqs(store, refs)
            b = store.get(seqs[-1])
            if previous:
                before = store.previous_of_event(b)
                if before is None:
                    raise UsageError(f"#{b.seq} has no earlier delivery of {b.event_type or 'any event'} to compare with")
                a = store.get(before.seq)
            else:
                a = store.get(seqs[0])
        changes = diff_deliveries(a, b, options)
        if as_json:
            out.json([c.to_dict() for c in changes])
        else:
            out.print(Text(f"#{a.seq} → #{b.seq}", style="bold"))
            out.print(render_changes(changes, side_by_side, (f"#{a.seq}", f"#{b.seq}")))
        if changes:
            raise typer.Exit(EXIT_FAILED)
        return
    secrets = gather_secrets(secret)
    with open_workspace(store_path) as workspace:
        seqs = select_seqs(workspace.store, refs, last, flt)
        if not seqs:
            raise UsageError("no deliveries match")
        progress = Progress(TextColumn("comparing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=out.stderr, disable=len(seqs) == 1 or as_json, transient=True)
        with progress:
            task = progress.add_task("diff", total=len(seqs))
            results = asyncio.run(diff_answers(
                workspace, seqs, to, against, options, concurrency=concurrency, timeout=timeout,
                resigner_for=(lambda d: resigner_for(d, secrets)) if secrets else None,
                on_result=lambda _r: progress.advance(task), verify_tls=not insecure))
    labels = ("recorded", to) if against is None else (to, against)
    if as_json:
        out.json(results[0].to_dict()["changes"] if len(results) == 1 and not is_set and results[0].error is None
                 else [r.to_dict() for r in results])
    elif len(results) == 1 and not is_set:
        result = results[0]
        out.print(Text(f"#{result.seq}: {labels[0]} → {labels[1]}", style="bold"))
        if result.error:
            raise UsageError(f"cannot compare #{result.seq}: {result.error}")
        out.print(render_changes(result.changes, side_by_side, labels))
    else:
        out.print(summary_table(results))
        differing = sum(1 for r in results if r.differs)
        out.info(f"{differing} of {len(results)} differ")
    if any(r.error for r in results) and len(results) == 1:
        raise UsageError(f"cannot compare #{results[0].seq}: {results[0].error}")
    if any(r.differs for r in results):
        raise typer.Exit(EXIT_FAILED)
