"""Re-send stored deliveries and record every send as an Attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hookinspect.errors import UsageError
from hookinspect.forward import DEFAULT_TIMEOUT, Forwarder, RequestEdits, Resigner, validate_target
from hookinspect.model import Attempt, Delivery
from hookinspect.store.sqlite import Store
from hookinspect.workspace import Workspace


def default_targets(store: Store, seqs: list[int], configured: str | None) -> dict[int, str]:
    """Where each delivery goes without --to: the configured target, else where it last went."""
    targets: dict[int, str] = {}
    missing: list[int] = []
    for seq in seqs:
        if configured:
            targets[seq] = configured
            continue
        last = store.last_attempt(seq)
        if last is None:
            missing.append(seq)
        else:
            targets[seq] = last.target_url
    if missing:
        shown = ", ".join(f"#{s}" for s in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise UsageError(f"no target for {shown}: never sent anywhere", "pass --to URL or set forward_to in hookinspect.toml")
    return targets


async def replay_deliveries(
    workspace: Workspace,
    targets: dict[int, str],
    *,
    edits: RequestEdits | None = None,
    concurrency: int = 4,
    timeout: float = DEFAULT_TIMEOUT,
    resigner_for: Callable[[Delivery], Resigner | None] | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
    kind: str = "replay",
    verify_tls: bool = True,
) -> list[Attempt]:
    """Send each delivery to its target (at most `concurrency` at once); attempts in input order."""
    targets = {seq: validate_target(target) for seq, target in targets.items()}
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(seq: int, target: str, forwarder: Forwarder) -> Attempt:
        async with semaphore:
            delivery = await workspace.read(lambda store: store.get(seq))
            resign = resigner_for(delivery) if resigner_for is not None else None
            attempt = await forwarder.send(delivery, target, kind=kind, edits=edits, resign=resign)
            await workspace.add_attempt(attempt, settles_queue=True)
            if on_attempt is not None:
                on_attempt(attempt)
            return attempt

    async with Forwarder(timeout=timeout, verify_tls=verify_tls) as forwarder:
        return list(await asyncio.gather(*(one(seq, t, forwarder) for seq, t in targets.items())))
