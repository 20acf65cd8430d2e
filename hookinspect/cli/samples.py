"""samples: the bundled sample events that `send` delivers."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from hookinspect.cli.common import JSON_OPTION
from hookinspect.cli.output import Output, add_columns
from hookinspect.formats.samples import list_samples

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("samples")
def show_samples(as_json: bool = JSON_OPTION) -> None:
    """List the bundled sample events that `send` can deliver."""
    out = Output()
    samples = list_samples()
    if as_json:
        out.json([s.to_dict() for s in samples])
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    add_columns(table, ("sample", "path", "what it is"), prose=("what it is",))
    for sample in samples:
        table.add_row(Text(sample.name, style="bold"), sample.path, sample.description)
    if out.is_narrow:
        out.stacked([(Text(sample.name, style="bold") + Text(f"  {sample.path}", style="dim"), [Text(sample.description)])
                     for sample in samples])
    else:
        out.print(table)
