"""import: deliveries from a HAR, fixture or JSON file, recorded like captures."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from hookinspect.cli.common import (
    JSON_OPTION,
    SECRET_OPTION,
    STORE_OPTION,
    gather_secrets,
    open_workspace,
)
from hookinspect.cli.output import Output
from hookinspect.errors import UsageError
from hookinspect.intake.importing import import_deliveries, parse_import
from hookinspect.recorder import Recorder
from hookinspect.signing.registry import annotate_delivery

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("import")
def import_file(
    path: Path = typer.Argument(..., help="A HAR file (from a browser or `export --format har`), a fixture file or a JSON export; - for stdin."),
    secret: list[str] = SECRET_OPTION,
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Load deliveries from a HAR, fixture or JSON file into the store; duplicates are skipped."""
    out = Output()
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    items = parse_import(data, str(path))
    secrets = gather_secrets(secret)
    with open_workspace(store_path, create=True) as workspace:
        # Through the one capture path: what the file does not say (a browser's HAR) is found as for a
        # capture; provider, event and verdict that came with an export are kept as they were.
        recorder = Recorder(workspace, annotate=lambda delivery: None if delivery.provider is not None
                            else annotate_delivery(delivery, secrets, bool(secrets)))
        added, skipped = asyncio.run(import_deliveries(recorder, items))
    if as_json:
        out.json({"imported": added, "skipped": skipped})
    else:
        out.info(f"imported {added} deliver{'y' if added == 1 else 'ies'}" + (f", skipped {skipped} already stored" if skipped else ""))
