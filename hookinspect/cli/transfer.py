"""export and import."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from hookinspect.cli.app import app
from hookinspect.cli.browse import build_filter
from hookinspect.cli.common import FILTER_OPTION, STORE_OPTION, open_store
from hookinspect.cli.output import Output
from hookinspect.cli.sending import select_seqs
from hookinspect.config import Settings
from hookinspect.errors import UsageError
from hookinspect.export import EXPORTERS, ExportItem, Redaction, export, import_items, parse_import
from hookinspect.forward import validate_target


@app.command("export")
def export_deliveries(
    refs: list[str] = typer.Argument(None, help="Numbers, ranges or ids. Example: 40-45"),
    fmt: str = typer.Option("curl", "--format", "-F", help="One of: " + ", ".join(EXPORTERS) + ". Example: --format har"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout. Example: -o hooks.har"),
    to: str | None = typer.Option(None, "--to", help="Retarget curl/httpie/HAR URLs. Example: --to http://localhost:3000/"),
    last: int | None = typer.Option(None, "--last", min=1, help="The newest N deliveries. Example: --last 5"),
    filter_expression: str | None = FILTER_OPTION,
    expect_json: bool = typer.Option(False, "--expect-json", help="Fixtures: also expect the top-level JSON fields of the latest successful answer."),
    redact_secrets: bool | None = typer.Option(None, "--redact/--no-redact", help="Mask Authorization, cookies, signatures and token query values [default: on for har and json, off for curl, httpie, raw]"),
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Write deliveries as curl or HTTPie commands, raw HTTP, HAR 1.2, JSON or a fixture file."""
    out = Output()
    if to is not None:
        to = validate_target(to)
    with open_store(store_path) as store:
        seqs = select_seqs(store, refs or [], last, build_filter(filter_expression))
        items = [ExportItem(store.get(seq), store.attempts(seq)) for seq in seqs]
    if not items:
        raise UsageError("nothing matches; nothing exported")
    options = {"with_json": expect_json} if fmt == "fixture" else {}
    rules = Redaction.from_config(Settings().table("redact"))
    rendered, masked = export(items, fmt, to=to, redact_secrets=redact_secrets, rules=rules, **options)
    data = rendered if isinstance(rendered, bytes) else rendered.encode("utf-8", "surrogateescape")
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror}") from None
        out.info(f"wrote {len(items)} deliver{'y' if len(items) == 1 else 'ies'} as {fmt} to {output}")
    else:
        out.raw(data)
    if masked:
        out.info(f"masked {len(masked)} secret value(s): " + ", ".join(masked[:6]) + (" …" if len(masked) > 6 else "")
                 + " (--no-redact keeps them)")


@app.command("import")
def import_file(
    path: Path = typer.Argument(..., help="A HAR file (from a browser or `export --format har`), a fixture file or a JSON export; - for stdin."),
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
    with open_store(store_path, create=True) as store:
        added, skipped = import_items(store, items)
    out.info(f"imported {added} deliver{'y' if added == 1 else 'ies'}" + (f", skipped {skipped} already stored" if skipped else ""))
