"""ui: the terminal UI over the store."""

from __future__ import annotations

from pathlib import Path

import typer

from hookinspect.cli.common import SECRET_OPTION, STORE_OPTION, gather_secrets
from hookinspect.config import Settings
from hookinspect.store.sqlite import default_store_path

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("ui")
def open_ui(
    target: str | None = typer.Option(None, "--target", "--to", help="Where r replays to. Example: --target http://localhost:3000/"),
    secret: list[str] = SECRET_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Open the terminal UI over the store (it follows what `listen` captures)."""
    from hookinspect.formats.targets import validate_target
    from hookinspect.tui.app import run_ui
    from hookinspect.workspace import Workspace

    # Opened before the UI starts, so a missing or foreign store is a clear error, not a broken screen.
    with Workspace(store_path or default_store_path()) as workspace:
        run_ui(workspace, target=validate_target(target) if target else Settings().get("forward_to"),
               secrets=gather_secrets(secret))
