"""check: replay fixture files against a backend and fail on regressions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from hookinspect.cli.common import INSECURE_OPTION, JSON_OPTION, SECRET_OPTION, gather_secrets
from hookinspect.cli.output import Output, add_columns, safe_text
from hookinspect.errors import EXIT_FAILED, UsageError
from hookinspect.formats.fixtures import FixtureRecord, load_fixture
from hookinspect.private_files import write_private
from hookinspect.send.check import junit_xml, load_app, run_checks
from hookinspect.signing.registry import missing_secrets, resigner_for
from hookinspect.views.delivery import change_lines
from hookinspect.views.text import status_style

app = typer.Typer()  # this module's commands; cli/app.py gathers them


def fixture_files(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for the *.json files in it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                raise UsageError(f"no *.json fixture files in {path}")
            files += found
        else:
            files.append(path)
    return files


@app.command("check")
def check(
    paths: list[Path] = typer.Argument(..., help="Fixture files or directories. Example: tests/webhooks/*.json"),
    target: str | None = typer.Option(None, "--target", "-t", help="Backend base URL. Example: --target http://localhost:8000"),
    app_spec: str | None = typer.Option(None, "--app", help="An ASGI/WSGI app to call in-process. Example: --app shop.main:app"),
    secret: list[str] = SECRET_OPTION,
    only: list[str] = typer.Option([], "--only", help="Only these event types (glob, repeatable). Example: --only 'invoice.*'"),
    junit: Path | None = typer.Option(None, "--junit", help="Write a JUnit XML report. Example: --junit reports/webhooks.xml"),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=256, help="Sends at once."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds per send."),
    insecure: bool = INSECURE_OPTION,
    strict: bool = typer.Option(False, "--strict", help="A signed fixture with no secret to re-sign it is an error, not a warning."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Replay fixtures (re-signed) against a backend and check each answer against its expectation."""
    out = Output()
    records: list[FixtureRecord] = []
    for path in fixture_files(paths):
        records += load_fixture(path, only or None)
    if not records:
        raise UsageError("no fixture records to check" + (" (--only matched none)" if only else ""))
    application = load_app(app_spec) if app_spec else None
    secrets = gather_secrets(secret)
    for provider, count in missing_secrets([r.delivery for r in records], secrets).items():
        message = (f"{count} {provider}-signed fixture{'s' if count > 1 else ''} cannot be re-signed: no secret for "
                   f"{provider}, so {'they go' if count > 1 else 'it goes'} out with the recorded signature (redacted "
                   f"on export), which a backend that checks signatures refuses")
        hint = f"give --secret {provider}=… or HOOKINSPECT_SECRET_{provider.upper()}"
        if strict:
            raise UsageError(message, hint)
        out.warn(f"{message} ({hint}; --strict makes this an error)")
    progress = Progress(TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=out.stderr, disable=as_json, transient=True)
    with progress:
        task = progress.add_task("check", total=len(records))
        results = asyncio.run(run_checks(
            records, target=target, app=application, concurrency=concurrency, timeout=timeout,
            resigner_for=(lambda d: resigner_for(d, secrets)) if secrets else None,
            on_result=lambda _r: progress.advance(task), verify_tls=not insecure))
    if junit is not None:
        try:
            write_private(junit, junit_xml(results))
        except OSError as exc:
            raise UsageError(f"cannot write {junit}: {exc.strerror}") from None
    failed = [r for r in results if not r.passed]
    if as_json:
        out.json({"passed": len(results) - len(failed), "failed": len(failed), "results": [r.to_dict() for r in results]})
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        add_columns(table, ("", "fixture", "file", "answer", "latency"), right=("latency",))
        for result in results:
            mark = Text("✓", style="green") if result.passed else Text("✗", style="bold red")
            outcome = result.attempt.outcome
            table.add_row(mark, safe_text(result.record.name), safe_text(Path(result.record.source).name),
                          Text(outcome, style=status_style(outcome)),
                          f"{result.attempt.latency_ms:.0f} ms" if result.attempt.latency_ms is not None else "")
        out.print(table)
        for result in failed:
            out.print(Text(f"\n✗ {result.record.name}", style="bold red") + Text(f"  ({Path(result.record.source).name})", style="dim"))
            out.lines(change_lines(result.failures))
            if result.attempt.response is not None and result.attempt.response.body:
                out.print(Text("  response: ", style="dim") + safe_text(result.attempt.response.text()[:300].replace("\n", " ")))
        summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
        out.print(Text(summary, style="bold green" if not failed else "bold red"))
    if failed:
        raise typer.Exit(EXIT_FAILED)
