"""Commands that read and prune the store: ls, show, attempts, rm, clear."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from hookinspect.cli.app import app
from hookinspect.cli.common import (
    FILTER_OPTION,
    JSON_OPTION,
    SECRET_OPTION,
    STORE_OPTION,
    gather_secrets,
    open_store,
)
from hookinspect.cli.output import Output, safe_text
from hookinspect.cli.render import VERDICT_STYLES, attempts_table, deliveries_table, delivery_detail
from hookinspect.config import Settings
from hookinspect.errors import EXIT_FAILED, UsageError
from hookinspect.filters import DeliveryFilter, parse_filter, parse_refs, parse_time
from hookinspect.signing.registry import check_delivery
from hookinspect.store.sqlite import Store


def build_filter(
    expression: str | None = None, method: list[str] | None = None, path: str | None = None,
    content_type: str | None = None, since: str | None = None, until: str | None = None,
    search: str | None = None, provider: str | None = None, event: str | None = None,
    verdict: str | None = None,
) -> DeliveryFilter:
    """The filter of a command's --filter expression plus its dedicated flags."""
    flt = parse_filter(expression)
    extra = DeliveryFilter(
        providers=[provider.lower()] if provider else [],
        event_globs=[event] if event else [],
        verdicts=[verdict.lower()] if verdict else [],
        methods=[m.upper() for m in method or []],
        path_globs=[path] if path else [],
        content_types=[content_type.lower()] if content_type else [],
        since_us=parse_time(since) if since else None,
        until_us=parse_time(until) if until else None,
        texts=[search] if search else [],
    )
    return flt.merged(extra)


def resolve_seqs(store: Store, refs: list[str]) -> list[int]:
    """Sequence numbers for refs (numbers, ranges, id prefixes); unknown ones are an error."""
    seqs: list[int] = []
    for ref in parse_refs(refs):
        seqs.append(store.get(ref).seq if isinstance(ref, str) else ref)  # type: ignore[arg-type]
    return seqs


@app.command("ls")
def list_deliveries(
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many rows. Example: -n 200"),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many newest rows (paging)."),
    filter_expression: str | None = FILTER_OPTION,
    method: list[str] = typer.Option([], "--method", "-m", help="Only this method (repeatable). Example: -m POST"),
    path: str | None = typer.Option(None, "--path", help="Path glob. Example: --path '/stripe/*'"),
    content_type: str | None = typer.Option(None, "--content-type", help="Content type prefix. Example: application/json"),
    since: str | None = typer.Option(None, "--since", help="Received after: 10m, 2h, 3d or an ISO time."),
    until: str | None = typer.Option(None, "--until", help="Received before: 10m, 2h, 3d or an ISO time."),
    search: str | None = typer.Option(None, "--search", "-s", help="Text that must occur in the path or body."),
    provider: str | None = typer.Option(None, "--provider", help="Only this provider. Example: --provider stripe"),
    event: str | None = typer.Option(None, "--event", help="Event type glob. Example: --event 'invoice.*'"),
    verdict: str | None = typer.Option(None, "--verdict", help="Signature verdict: valid, invalid, expired, malformed, unsigned, no-secret."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """List deliveries, newest first."""
    out = Output()
    flt = build_filter(filter_expression, method, path, content_type, since, until, search, provider, event, verdict)
    with open_store(store_path) as store:
        rows = store.list(flt, limit=limit, offset=offset)
        if as_json:
            out.json([row.to_dict() for row in rows])
            return
        total = store.count(flt)
    if not rows:
        out.info("no deliveries match" if not flt.is_empty else "no deliveries yet; send one to `hookinspect listen`")
        return
    out.print(deliveries_table(rows))
    if total > len(rows) + offset:
        out.info(f"{len(rows)} of {total} shown; --limit / --offset for more")


@app.command("show")
def show_delivery(
    ref: str = typer.Argument(..., help="Delivery number or id. Example: 42"),
    raw: bool = typer.Option(False, "--raw", help="Write the exact body bytes to stdout and nothing else."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Show one delivery: request line, headers, body and its latest attempt."""
    out = Output()
    with open_store(store_path) as store:
        [target] = parse_refs([ref])[:1] or [None]
        if target is None:
            raise UsageError("which delivery? Example: hookinspect show 42")
        delivery = store.get(target)
        attempts = store.attempts(delivery.seq)  # type: ignore[arg-type]
    if raw:
        out.raw(delivery.body)
    elif as_json:
        data = delivery.to_dict()
        data["attempts"] = [a.to_dict() for a in attempts]
        out.json(data)
    else:
        out.print(delivery_detail(delivery, attempts[-1] if attempts else None))


@app.command("attempts")
def list_attempts(
    ref: str = typer.Argument(..., help="Delivery number or id. Example: 42"),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """List every send (forward, replay, check) of one delivery."""
    out = Output()
    with open_store(store_path) as store:
        [seq] = resolve_seqs(store, [ref])[:1]
        store.get(seq)
        attempts = store.attempts(seq)
    if as_json:
        out.json([a.to_dict() for a in attempts])
    elif not attempts:
        out.info(f"#{seq} has not been sent anywhere yet; `hookinspect replay {seq} --to URL` sends it")
    else:
        out.print(attempts_table(attempts))


@app.command("rm")
def remove_deliveries(
    refs: list[str] = typer.Argument(..., help="Numbers, ranges or ids. Example: 3 7-9"),
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Delete deliveries (and their attempts)."""
    out = Output()
    with open_store(store_path) as store:
        seqs = resolve_seqs(store, refs)
        for seq in seqs:
            store.get(seq)  # every ref must exist before anything is deleted
        deleted = store.delete(seqs)
    out.info(f"deleted {deleted} deliver{'y' if deleted == 1 else 'ies'}")


@app.command("clear")
def clear_store(
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete every delivery."),
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Delete every delivery in the store."""
    out = Output()
    with open_store(store_path) as store:
        if not yes:
            raise UsageError(f"this deletes all {store.count()} deliveries in {store.path}", "add --yes to confirm")
        deleted = store.clear()
    out.info(f"deleted {deleted} deliveries")


@app.command("verify")
def verify_delivery(
    ref: str = typer.Argument(..., help="Delivery number or id. Example: 42"),
    secret: list[str] = SECRET_OPTION,
    url: str | None = typer.Option(None, "--url", help="The public URL the sender called (Twilio signs it). Example: --url https://abc.example/sms"),
    provider: str | None = typer.Option(None, "--provider", help="Check as this provider instead of detecting it."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Re-check the signature of a stored delivery (and store the new verdict)."""
    out = Output()
    secrets = gather_secrets(secret)
    with open_store(store_path) as store:
        [seq] = resolve_seqs(store, [ref])[:1]
        delivery = store.get(seq)
        result = check_delivery(delivery, secrets, url=url, provider=provider)
        if result.verdict is not None:
            with store.transaction():
                store.set_verdict(seq, result.provider, result.event_type, result.verdict.status, result.verdict.reason)
    data = {"seq": seq, "provider": result.provider, "event_type": result.event_type,
            "verdict": result.verdict.status if result.verdict else None,
            "verdict_reason": result.verdict.reason if result.verdict else None}
    if as_json:
        out.json(data)
    elif result.provider is None:
        out.print(Text(f"#{seq}: no known provider signed this delivery; --provider NAME checks it as one"))
    else:
        assert result.verdict is not None
        line = Text(f"#{seq} {result.provider} {result.event_type or ''}  ") + Text(
            result.verdict.status, style=VERDICT_STYLES.get(result.verdict.status, "")) + Text(": ") + safe_text(result.verdict.reason)
        out.print(line)
    if result.verdict is None or not result.verdict.is_valid:
        raise typer.Exit(EXIT_FAILED)


@app.command("ui")
def open_ui(
    target: str | None = typer.Option(None, "--target", "--to", help="Where r replays to. Example: --target http://localhost:3000/"),
    secret: list[str] = SECRET_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Open the terminal UI over the store (it follows what `listen` captures)."""
    from hookinspect.forward import validate_target
    from hookinspect.tui.app import run_ui

    with open_store(store_path) as store:  # a clear error now rather than inside the UI
        path = store.path
    run_ui(path, target=validate_target(target) if target else Settings().get("forward_to"),
           secrets=gather_secrets(secret))
