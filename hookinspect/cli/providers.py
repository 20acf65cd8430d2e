"""providers: every signature scheme hookinspect knows, and how each is recognised."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from hookinspect.cli.common import JSON_OPTION
from hookinspect.cli.output import Output, add_columns
from hookinspect.config import Settings

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("providers")
def list_providers(as_json: bool = JSON_OPTION) -> None:
    """List the providers: how each is detected, which secret it takes, how old a signature may be."""
    from hookinspect.signing.registry import describe_providers, register_schemes

    register_schemes(Settings().table("providers"))
    providers = describe_providers()
    out = Output()
    if as_json:
        out.json(providers)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    add_columns(table, ("provider", "detected by", "secret", "tolerance", "signature"),
                prose=("detected by", "secret", "signature"))
    records = []
    for provider in providers:
        tolerance = f"{provider['tolerance_seconds']} s" if provider["tolerance_seconds"] is not None else "-"
        name = Text(provider["name"], style="bold") + (Text(" (yours)", style="cyan") if provider["defined_in"] != "hookinspect" else Text())
        table.add_row(name, provider["detected_by"], provider["secret"], tolerance, Text(provider["signature"], style="dim"))
        records.append((name, [Text(f"detected by {provider['detected_by']}"), Text(f"secret: {provider['secret']}"),
                               Text(f"tolerance {tolerance}"), Text(f"signature {provider['signature']}", style="dim")]))
    if out.is_narrow:
        out.stacked(records)
    else:
        out.print(table)
    out.info(f"{len(providers)} providers; give a secret with --secret NAME=… or HOOKINSPECT_SECRET_NAME; "
             "define your own as [providers.NAME] in hookinspect.toml")
