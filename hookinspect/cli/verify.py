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
    save: bool = typer.Option(False, "--save", help="Store this verdict on the delivery (ls, the UIs show it); without it, verify only answers."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Re-check the signature of a stored delivery and say why; --save stores the new verdict.

    A secret typed here is a question: a mistyped one must not turn a delivery the configured
    secret found valid into an invalid one in every view. A bare --secret whsec_… is taken as
    the secret of the delivery's own provider."""
    out = Output()
    with open_workspace(store_path) as workspace:
        [seq] = resolve_seqs(workspace.store, [ref])[:1]
        delivery = workspace.store.get(seq)
        secrets = gather_secrets(with_provider(secret, provider or detected_provider(delivery)))
        result = check_delivery(delivery, secrets, url=url, provider=provider)
        verdict = result.verdict
        # Without the secret there is nothing new to say: a stored verdict (say `invalid`) stays.
        is_news = verdict is not None and verdict.status != NO_SECRET
        if save and is_news:
            workspace.write(lambda store: store.set_verdict(seq, result.provider, result.event_type, verdict.status,
                                                            verdict.reason), StoreChange(ChangeKind.STORE))
    data = {"seq": seq, "provider": result.provider, "event_type": result.event_type,
            "verdict": verdict.status if verdict else None,
            "verdict_reason": verdict.reason if verdict else None, "saved": save and is_news,
            "stored_verdict": verdict.status if save and is_news else delivery.verdict}
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
    if not as_json and is_news and not save and delivery.verdict and delivery.verdict != verdict.status:
        out.info(f"#{seq} stays {delivery.verdict} in the store (checked when it arrived); --save stores this verdict")
    if verdict is None or not verdict.is_valid:
        raise typer.Exit(EXIT_FAILED)


def detected_provider(delivery) -> str | None:  # noqa: ANN001 (a Delivery)
    """The provider the delivery was recorded as, or the one its headers and payload say."""
    if delivery.provider:
        return delivery.provider
    from hookinspect.signing.registry import detect, message_of

    found = detect(message_of(delivery))
    return found[0].name if found else None


def with_provider(flags: list[str], provider: str | None) -> list[str]:
    """`--secret whsec_…` without a provider means the delivery's own provider's secret."""
    from hookinspect.signing.registry import PROVIDERS

    def names_one(flag: str) -> bool:
        name = flag.partition("=")[0].partition(":")[0].lower()
        return "=" in flag and name in PROVIDERS

    if provider is None:
        return flags
    return [flag if names_one(flag) else f"{provider}={flag}" for flag in flags]
