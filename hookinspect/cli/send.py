"""send: a realistic signed delivery without a provider account."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.text import Text

from hookinspect.cli.common import JSON_OPTION, gather_secrets
from hookinspect.cli.output import Output, safe_text
from hookinspect.errors import EXIT_FAILED, EXIT_NETWORK
from hookinspect.formats.samples import build_sample_request, find_sample
from hookinspect.formats.targets import validate_target
from hookinspect.send.forward import Forwarder
from hookinspect.signing.registry import PROVIDERS
from hookinspect.views.text import safe_url, status_style

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("send")
def send_sample(
    name: str = typer.Argument(..., help="A sample from `hookinspect samples`. Example: stripe/payment_intent.succeeded"),
    to: str = typer.Option(..., "--to", help="Where to send it (no scheme means http://). Example: --to localhost:3000/webhooks"),
    secret: str | None = typer.Option(None, "--secret", help="Signing secret (else HOOKINSPECT_SECRET_<PROVIDER> or [secrets]). Example: --secret whsec_..."),
    set_field: list[str] = typer.Option([], "--set", help="Override a JSON (dotted path) or form field. Example: --set data.object.amount=2500"),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds to wait. Example: --timeout 5"),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = typer.Option(None, "--store", hidden=True),
) -> None:
    """Send a sample event with the provider's headers and a fresh signature."""
    out = Output()
    to = validate_target(to)
    sample = find_sample(name)
    if secret and "=" in secret and secret.split("=", 1)[0].lower() in PROVIDERS:
        secret = secret.split("=", 1)[1]
    if secret is None and sample.provider is not None:
        secret = gather_secrets([]).for_(sample.provider, sample.path)
    request = build_sample_request(sample, to, secret, set_field)

    async def go():  # noqa: ANN202
        async with Forwarder(timeout=timeout) as forwarder:
            return await forwarder.send_request(0, request, target=to, kind="send")

    attempt = asyncio.run(go())
    if as_json:
        data = attempt.to_dict(shown=True)
        data.pop("delivery_seq")
        out.json(data)
    else:
        signed = "signed" if secret and sample.provider else "unsigned"
        line = Text(f"{sample.name} ({signed}) → ") + Text(*safe_url(request.url)) + Text("  ") + Text(
            attempt.outcome, style=status_style(attempt.outcome))
        if attempt.latency_ms is not None:
            line += Text(f"  {attempt.latency_ms:.0f} ms", style="dim")
        out.line(line)
        if attempt.error_message:
            out.error(attempt.error_message)
        elif attempt.response is not None and not attempt.is_success:
            out.print(safe_text(attempt.response.text()[:500]))
    if attempt.response is None:  # no answer at all: the target cannot be reached
        raise typer.Exit(EXIT_NETWORK)
    if not attempt.is_success:
        raise typer.Exit(EXIT_FAILED)
