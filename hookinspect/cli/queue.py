"""queue: what `listen --ack` still has to send, and retry, cancel, pause or resume it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from hookinspect.cli.common import JSON_OPTION, STORE_OPTION, open_workspace, resolve_seqs
from hookinspect.cli.output import Output, add_columns
from hookinspect.errors import UsageError
from hookinspect.store.queue import QueueItem
from hookinspect.values import now_us
from hookinspect.views.text import local_time, safe_url, status_style
from hookinspect.workspace import ChangeKind, StoreChange

app = typer.Typer()  # this module's commands; cli/app.py gathers them
queue_app = typer.Typer(help="The forward queue of `listen --ack`: list, retry, cancel, pause, resume.",
                        invoke_without_command=True)
app.add_typer(queue_app, name="queue")

ALL_OPTION = typer.Option(False, "--all", help="Every pending (and, for retry, given-up) delivery.")
REFS_ARGUMENT = typer.Argument(None, help="Delivery numbers or ranges. Example: 42 40-45")


def items_table(items: list[QueueItem]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    add_columns(table, ("#", "target", "state", "tries", "next try", "last outcome"), right=("#", "tries"),
                prose=("last outcome",))
    for item in items:
        table.add_row(str(item.delivery_seq), Text(*safe_url(item.target)), item.state, str(item.tries),
                      local_time(item.next_at_us) if item.state == "pending" else "",
                      Text(item.last_outcome or "", style=status_style(item.last_outcome)))
    return table


DEAD_OPTION = typer.Option(False, "--dead", help="Also the deliveries it gave up on.")


@queue_app.callback()
def queue(ctx: typer.Context, dead: bool = DEAD_OPTION, as_json: bool = JSON_OPTION,
          store_path: Path | None = STORE_OPTION) -> None:
    """The forward queue: `queue` alone lists it, as `queue ls` does."""
    if ctx.invoked_subcommand is None:
        list_queue(dead, as_json, store_path)


@queue_app.command("ls")
def list_queue(dead: bool = DEAD_OPTION, as_json: bool = JSON_OPTION, store_path: Path | None = STORE_OPTION) -> None:
    """List the deliveries waiting to be forwarded, the next due first."""
    out = Output()
    with open_workspace(store_path) as workspace:
        items = workspace.store.queue_items(("pending", "dead") if dead else ("pending",))
        paused = workspace.store.paused_targets()
    if as_json:
        out.json({"items": [item.to_dict() for item in items], "paused": sorted(paused)})
        return
    if paused:
        out.info("paused: " + ", ".join(sorted(paused)) + " (`hookinspect queue resume TARGET`)")
    if not items:
        out.info("nothing waits in the forward queue")
        return
    out.print(items_table(items))


def _selected(workspace, refs: list[str] | None, every: bool) -> list[int] | None:  # noqa: ANN001
    if every == bool(refs):
        raise UsageError("name the deliveries (42 40-45) or say --all")
    return None if every else resolve_seqs(workspace.store, refs or [])


@queue_app.command("retry")
def retry_queue(refs: list[str] = REFS_ARGUMENT, every: bool = ALL_OPTION, as_json: bool = JSON_OPTION,
                store_path: Path | None = STORE_OPTION) -> None:
    """Send again now: waiting deliveries skip their backoff, given-up ones get another round."""
    out = Output()
    with open_workspace(store_path) as workspace:
        seqs = _selected(workspace, refs, every)
        count = workspace.write(lambda store: store.queue_retry(now_us(), seqs), StoreChange(ChangeKind.STORE))
    if seqs is not None and count == 0:
        raise UsageError(f"nothing to retry among {' '.join(refs)}: no forward of theirs waits or was given up",
                         "`hookinspect queue --dead` lists the queue; `hookinspect replay` sends any delivery again")
    if as_json:
        out.json({"retried": count})
    else:
        out.info(f"{count} queued forward(s) due now; a running `listen --ack` sends them within a second")


@queue_app.command("cancel")
def cancel_queue(refs: list[str] = REFS_ARGUMENT, every: bool = ALL_OPTION, as_json: bool = JSON_OPTION,
                 store_path: Path | None = STORE_OPTION) -> None:
    """Do not send these deliveries (they stay in the store)."""
    out = Output()
    with open_workspace(store_path) as workspace:
        seqs = _selected(workspace, refs, every)
        count = workspace.write(lambda store: store.queue_cancel(seqs), StoreChange(ChangeKind.STORE))
    if seqs is not None and count == 0:
        raise UsageError(f"nothing to cancel among {' '.join(refs)}: no forward of theirs waits",
                         "`hookinspect queue` lists what waits")
    if as_json:
        out.json({"cancelled": count})
    else:
        out.info(f"cancelled {count} queued forward(s)")


@queue_app.command("pause")
def pause_target(target: str = typer.Argument(..., help="A target as given to --forward-to. Example: http://localhost:3000/"),
                 as_json: bool = JSON_OPTION, store_path: Path | None = STORE_OPTION) -> None:
    """Hold every send to a target until `queue resume` (deliveries keep queueing)."""
    out = Output()
    with open_workspace(store_path) as workspace:
        workspace.write(lambda store: store.queue_pause(target, now_us()), StoreChange(ChangeKind.STORE))
    if as_json:
        out.json({"paused": target})
    else:
        out.info(f"paused sends to {target}")


@queue_app.command("resume")
def resume_target(target: str = typer.Argument(..., help="A paused target. Example: http://localhost:3000/"),
                  as_json: bool = JSON_OPTION, store_path: Path | None = STORE_OPTION) -> None:
    """Send to a paused target again."""
    out = Output()
    with open_workspace(store_path) as workspace:
        was_paused = workspace.write(lambda store: store.queue_resume(target), StoreChange(ChangeKind.STORE))
    if not was_paused:
        raise UsageError(f"{target} is not paused", "`hookinspect queue` lists the paused targets")
    if as_json:
        out.json({"resumed": target})
    else:
        out.info(f"resumed sends to {target}")
