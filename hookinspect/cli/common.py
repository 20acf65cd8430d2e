"""Options shared by many commands, declared once."""

from __future__ import annotations

from pathlib import Path

import typer

from hookinspect.config import parse_size  # noqa: F401 (the commands take it from here)
from hookinspect.errors import UsageError
from hookinspect.formats.filters import (
    DeliveryFilter,
    checked_provider,
    checked_verdict,
    parse_filter,
    parse_refs,
    parse_time,
)
from hookinspect.store.sqlite import Store, default_store_path
from hookinspect.workspace import Workspace

STORE_OPTION = typer.Option(
    None, "--store", envvar="HOOKINSPECT_STORE", show_envvar=True,
    help="Store file. Example: --store /tmp/hooks.db [default: ./.hookinspect/store.db]",
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON (a documented, stable shape) instead of a table.")
INSECURE_OPTION = typer.Option(
    False, "--insecure", "-k",
    help="Do not verify the target's TLS certificate (a local https server with a self-signed one).",
)
FILTER_OPTION = typer.Option(
    None, "--filter", "-f",
    help="Filter expression. Example: -f 'method:POST path:/stripe/* event:invoice.* $.amount>1000'",
)


def open_workspace(path: Path | None, *, create: bool = False) -> Workspace:
    """Open the store a command names (flag, env, then the default); readers never create one."""
    return Workspace(path or default_store_path(), create=create)


def build_filter(
    expression: str | None = None, method: list[str] | None = None, path: str | None = None,
    content_type: str | None = None, since: str | None = None, until: str | None = None,
    search: str | None = None, provider: str | None = None, event: str | None = None,
    verdict: str | None = None,
) -> DeliveryFilter:
    """The filter of a command's --filter expression plus its dedicated flags."""
    flt = parse_filter(expression)
    extra = DeliveryFilter(
        providers=[checked_provider(provider)] if provider else [],
        event_globs=[event] if event else [],
        verdicts=[checked_verdict(verdict)] if verdict else [],
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


def select_seqs(store: Store, refs: list[str], last: int | None, flt: DeliveryFilter) -> list[int]:
    """Deliveries named by refs, or the newest `last`, or everything the filter matches."""
    if refs:
        seqs = resolve_seqs(store, refs)
        for seq in seqs:
            store.get(seq)
        return seqs
    if last:
        return sorted(row.seq for row in store.list(flt, limit=last))
    if not flt.is_empty:
        return store.seqs(flt)
    raise UsageError("which deliveries? name them (42, 40-45), or use --last N, --failed or --filter")


ALLOWED_HOST_OPTION = typer.Option(
    [], "--allowed-host",
    help="A name this server also answers to, besides its address and localhost (repeatable; '*' for any). "
         "Other Host headers are refused, so a web page cannot rebind its name to this machine and read it. "
         "Example: --allowed-host relay.example.com",
)

SECRET_OPTION = typer.Option(
    [], "--secret",
    help="Signing secret per provider (repeatable; also HOOKINSPECT_SECRET_<PROVIDER> and [secrets] in the config; "
         "PROVIDER=@FILE reads it from a file, out of `ps`). "
         "Example: --secret stripe=whsec_... or --secret stripe=@.stripe-secret or --secret 'github:/gh/*=s3cret'",
)


def gather_secrets(flags: list[str]):  # -> Secrets
    """Secrets from flags, environment and config file; the file's own providers ([providers.NAME])
    are registered first, so their secrets are accepted."""
    import os

    from hookinspect.config import Settings
    from hookinspect.signing.registry import Secrets, register_schemes

    settings = Settings()
    register_schemes(settings.table("providers"))
    return Secrets.gather(flags, os.environ, settings.table("secrets"))
