"""export: deliveries as curl or HTTPie commands, raw HTTP, HAR, JSON or a fixture file."""

from __future__ import annotations

from pathlib import Path

import typer

from hookinspect.cli.common import (
    FILTER_OPTION,
    STORE_OPTION,
    build_filter,
    open_workspace,
    select_seqs,
)
from hookinspect.cli.output import Output
from hookinspect.config import Settings
from hookinspect.errors import UsageError
from hookinspect.formats.export import EXPORTERS, ExportItem, export, write_export
from hookinspect.formats.redaction import Redaction
from hookinspect.formats.targets import validate_target

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("export")
def export_deliveries(
    refs: list[str] = typer.Argument(None, help="Numbers, ranges or ids. Example: 40-45"),
    fmt: str = typer.Option("curl", "--format", "-F", help="One of: " + ", ".join(EXPORTERS) + ". Example: --format har"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (or a timestamped file in this directory) instead of stdout. Example: -o hooks.har"),
    to: str | None = typer.Option(None, "--to", help="Retarget curl/httpie/HAR URLs. Example: --to http://localhost:3000/"),
    last: int | None = typer.Option(None, "--last", min=1, help="The newest N deliveries. Example: --last 5"),
    filter_expression: str | None = FILTER_OPTION,
    expect_json: bool = typer.Option(False, "--expect-json", help="Fixtures: also expect the top-level JSON fields of the latest successful answer."),
    redact_secrets: bool | None = typer.Option(None, "--redact/--no-redact", help="Mask Authorization, cookies, signatures and token query values [default: on for har and json, off for curl, httpie, raw]"),
    as_json: bool = typer.Option(False, "--json", help="With -o: say what was written as JSON ({file, format, deliveries, masked})."),
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Write deliveries as curl or HTTPie commands, raw HTTP, HAR 1.2, JSON or a fixture file."""
    out = Output()
    if to is not None:
        to = validate_target(to)
    with open_workspace(store_path) as workspace:
        store = workspace.store
        seqs = select_seqs(store, refs or [], last, build_filter(filter_expression))
        items = [ExportItem(store.get(seq), store.attempts(seq)) for seq in seqs]
    if not items:
        raise UsageError("nothing matches; nothing exported")
    if as_json and output is None:
        raise UsageError("--json says what -o wrote; without -o the export itself is the output", "use --format json for deliveries as JSON")
    options = {"with_json": expect_json} if fmt == "fixture" else {}
    rules = Redaction.from_config(Settings().table("redact"))
    if output is not None:
        written, masked = write_export(items, fmt, output, to=to, redact_secrets=redact_secrets, rules=rules, **options)
        if as_json:
            out.json({"file": str(written), "format": fmt, "deliveries": [item.delivery.seq for item in items],
                      "masked": masked})
            return
        out.info(f"wrote {len(items)} deliver{'y' if len(items) == 1 else 'ies'} as {fmt} to {written}")
    else:
        rendered, masked = export(items, fmt, to=to, redact_secrets=redact_secrets, rules=rules, **options)
        out.raw(rendered if isinstance(rendered, bytes) else rendered.encode("utf-8", "surrogateescape"))
    if masked:
        out.info(f"masked {len(masked)} secret value(s): " + ", ".join(masked[:6]) + (" …" if len(masked) > 6 else "")
                 + " (--no-redact keeps them)")
