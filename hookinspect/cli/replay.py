"""replay: re-send stored deliveries to a target and record each answer."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import typer
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
    select_seqs,
)
from hookinspect.cli.output import Output, safe_text
from hookinspect.config import Settings
from hookinspect.errors import EXIT_FAILED, UsageError
from hookinspect.formats.filters import DeliveryFilter
from hookinspect.formats.targets import validate_target
from hookinspect.intake.responses import parse_header
from hookinspect.model import Attempt, Delivery
from hookinspect.send.forward import RequestEdits, Resigner
from hookinspect.send.replay import default_targets, replay_deliveries
from hookinspect.signing.registry import resigner_for
from hookinspect.views.text import safe_url, status_style
from hookinspect.workspace import Workspace

app = typer.Typer()  # this module's commands; cli/app.py gathers them


def edit_in_editor(body: bytes, suffix: str) -> bytes:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False) as fh:
        fh.write(body)
        path = fh.name
    try:
        result = subprocess.run([*shlex.split(editor), path])
        if result.returncode != 0:
            raise UsageError(f"editor {editor!r} exited with {result.returncode}; nothing was sent")
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"editor {editor!r} not found", "set $EDITOR") from None
    finally:
        os.unlink(path)


def attempts_summary(attempts: list[Attempt]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("#", "target", "outcome", "latency", "detail"):
        table.add_column(name, justify="right" if name in ("#", "latency") else "left")
    for attempt in attempts:
        detail = attempt.error_message or ""
        if not detail and attempt.response is not None and not attempt.is_success:
            detail = attempt.response.text()[:120].replace("\n", " ")
        table.add_row(str(attempt.delivery_seq), Text(*safe_url(attempt.target_url)),
                      Text(attempt.outcome, style=status_style(attempt.outcome)),
                      f"{attempt.latency_ms:.1f} ms" if attempt.latency_ms is not None else "", safe_text(detail))
    return table


@app.command("replay")
def replay(
    refs: list[str] = typer.Argument(None, help="Numbers, ranges or ids. Example: 42 40-45"),
    to: str | None = typer.Option(None, "--to", help="Target URL. Example: --to http://localhost:3000/webhooks [default: forward_to, else where each delivery last went]"),
    last: int | None = typer.Option(None, "--last", min=1, help="The newest N deliveries (after filters). Example: --last 10"),
    failed: bool = typer.Option(False, "--failed", help="Deliveries whose latest attempt failed."),
    filter_expression: str | None = FILTER_OPTION,
    set_header: list[str] = typer.Option([], "--set-header", help="Set a header for this send (repeatable). Example: --set-header 'x-debug: 1'"),
    drop_header: list[str] = typer.Option([], "--drop-header", help="Leave a header out (repeatable). Example: --drop-header user-agent"),
    body_file: Path | None = typer.Option(None, "--body-file", help="Send this file's bytes as the body. Example: --body-file fixed.json"),
    edit: bool = typer.Option(False, "--edit", help="Edit the body in $EDITOR before sending (one delivery)."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=256, help="Sends at once. Example: -c 8"),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds per send. Example: --timeout 5"),
    secret: list[str] = SECRET_OPTION,
    insecure: bool = INSECURE_OPTION,
    resign: bool = typer.Option(True, "--resign/--no-resign", help="Re-sign for the provider (fresh timestamp) when its secret is known."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Re-send stored deliveries to a target and record each answer."""
    out = Output()
    settings = Settings()
    if to is not None:
        to = validate_target(to)
    configured = next((validate_target(url) for url in settings.get_urls("forward_to")), None)  # the first one
    flt = build_filter(filter_expression)
    if failed:
        flt = flt.merged(DeliveryFilter(statuses=["failed"]))
    secrets = gather_secrets(secret)
    resigner = (lambda delivery: resigner_for(delivery, secrets)) if resign and secrets else None
    with open_workspace(store_path) as workspace:
        store = workspace.store
        seqs = select_seqs(store, refs or [], last, flt)
        if not seqs:
            out.info("nothing to replay")
            return
        targets = {seq: to for seq in seqs} if to else default_targets(store, seqs, configured)
        body = body_file.read_bytes() if body_file is not None else None
        if edit:
            if len(seqs) != 1:
                raise UsageError("--edit works on one delivery at a time")
            delivery = store.get(seqs[0])
            body = edit_in_editor(body if body is not None else delivery.body,
                                  ".json" if delivery.json() is not None else ".txt")
        edits = RequestEdits(set_headers=[parse_header(h) for h in set_header], drop_headers=drop_header, body=body)
        attempts = _run_with_progress(out, workspace, targets, edits, concurrency, timeout, resigner,
                                      show=len(seqs) > 1 and not as_json, verify_tls=not insecure)
    if as_json:
        out.json([a.to_dict(shown=True) for a in attempts])
    else:
        out.print(attempts_summary(attempts))
    failures = [a for a in attempts if not a.is_success]
    if failures:
        if not as_json:
            out.error(f"{len(failures)} of {len(attempts)} sends failed")
        raise typer.Exit(EXIT_FAILED)


def _run_with_progress(out: Output, workspace: Workspace, targets: dict[int, str], edits: RequestEdits,
                       concurrency: int, timeout: float, resigner: Callable[[Delivery], Resigner | None] | None,
                       show: bool, verify_tls: bool = True) -> list[Attempt]:
    progress = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=out.stderr, disable=not show, transient=True)
    with progress:
        task = progress.add_task("replay", total=len(targets))
        return asyncio.run(replay_deliveries(workspace, targets, edits=edits, concurrency=concurrency, timeout=timeout,
                                             resigner_for=resigner, verify_tls=verify_tls,
                                             on_attempt=lambda _a: progress.advance(task)))
