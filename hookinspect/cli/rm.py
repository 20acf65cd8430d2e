"""Commands that prune the store: rm, clear."""

from __future__ import annotations

from pathlib import Path

import typer

from hookinspect.cli.common import JSON_OPTION, STORE_OPTION, open_workspace, resolve_seqs
from hookinspect.cli.output import Output
from hookinspect.errors import UsageError

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("rm")
def remove_deliveries(
    refs: list[str] = typer.Argument(..., help="Numbers, ranges or ids. Example: 3 7-9"),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Delete deliveries (and their attempts)."""
    out = Output()
    with open_workspace(store_path) as workspace:
        seqs = resolve_seqs(workspace.store, refs)
        for seq in seqs:
            workspace.store.get(seq)  # every ref must exist before anything is deleted
        deleted = workspace.delete(seqs)
    if as_json:
        out.json({"deleted": deleted, "seqs": sorted(set(seqs))})
    else:
        out.info(f"deleted {deleted} deliver{'y' if deleted == 1 else 'ies'}")


@app.command("clear")
def clear_store(
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete every delivery."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Delete every delivery in the store."""
    out = Output()
    with open_workspace(store_path) as workspace:
        if not yes:
            raise UsageError(f"this deletes all {workspace.store.count()} deliveries in {workspace.path}", "add --yes to confirm")
        deleted = workspace.clear()
    if as_json:
        out.json({"deleted": deleted})
    else:
        out.info(f"deleted {deleted} deliveries")
