"""verify: re-check the signature of a stored delivery, and say why it passes or fails."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from hookinspect.cli.common import (
    JSON_OPTION,
    SECRET_OPTION,
    STORE_OPTION,
    gather_secrets,
    open_workspace,
    resolve_seqs,
)
from hookinspect.cli.output import Output, rich_line
from hookinspect.errors import EXIT_FAILED
from hookinspect.signing.base import NO_SECRET
from hookinspect.signing.registry import check_delivery
from hookinspect.views.text import VERDICT_STYLES, safe
from hookinspect.workspace import ChangeKind, StoreChange

app = typer.Typer()  # this module's commands; cli/app.py gathers them


@app.command("verify")
def verify_delivery(
    ref: str = typer.Argument(..., help="Delivery number or id. Example: 42"),
    secret: list[str] = SECRET_OPTION,
    url: str | None = typer.Option(None, "--url", help="The public URL the sender called (Twilio signs it). Example: --url https://abc.example/sms"),
    provider: str | None = typer.Option(None, "--provider", help="Check as this provider instead of detecting it."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Re-check the signature of a stored delivery (and store the new verdict, when a secret was given)."""
    out = Output()
    secrets = gather_secrets(secret)
    with open_workspace(store_path) as workspace:
        [seq] = resolve_seqs(workspace.store, [ref])[:1]
        delivery = workspace.store.get(seq)
        result = check_delivery(delivery, secrets, url=url, provider=provider)
        verdict = result.verdict
        # Without the secret there is nothing new to say: a stored verdict (say `invalid`) stays.
        if verdict is not None and verdict.status != NO_SECRET:
            workspace.write(lambda store: store.set_verdict(seq, result.provider, result.event_type, verdict.status,
                                                            verdict.reason), StoreChange(ChangeKind.STORE))
    data = {"seq": seq, "provider": result.provider, "event_type": result.event_type,
            "verdict": verdict.status if verdict else None,
            "verdict_reason": verdict.reason if verdict else None}
    if as_json:
        out.json(data)
    elif result.provider is None:
        out.print(Text(f"#{seq}: no known provider signed this delivery; --provider NAME checks it as one"))
    elif verdict is None:
        out.print(rich_line([(f"#{seq} ", ""), safe(result.provider), (" ", ""), safe(result.event_type or ""),
                             (f"  {result.provider} deliveries carry no signature to check", "dim")]))
    else:
        out.print(rich_line([(f"#{seq} ", ""), safe(result.provider), (" ", ""), safe(result.event_type or ""), ("  ", ""),
                             (verdict.status, VERDICT_STYLES.get(verdict.status, "")), (": ", ""), safe(verdict.reason)]))
    if verdict is None or not verdict.is_valid:
        raise typer.Exit(EXIT_FAILED)
