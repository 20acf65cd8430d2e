"""Re-send stored deliveries and record every send as an Attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hookinspect.errors import UsageError
from hookinspect.formats.targets import validate_target
from hookinspect.model import Attempt, Delivery
from hookinspect.send.forward import DEFAULT_TIMEOUT, Forwarder, RequestEdits, Resigner
from hookinspect.store.sqlite import Store
from hookinspect.workspace import Workspace


def last_own_target(store: Store, seq: int) -> str | None:
    """Where a delivery was last sent from here: never a target only an imported file or a recording named."""
    last = store.last_attempt(seq, own=True)
    return last.target_url if last else None


def default_targets(store: Store, seqs: list[int], configured: str | None) -> dict[int, str]:
    """Where each delivery goes without --to: the configured target, else where it last went
    from here. A target that only an imported file names is refused in one line: the file's
    author chose it, and a replay re-signs with your secrets."""
    targets: dict[int, str] = {}
    missing: list[int] = []
    imported: list[int] = []
    for seq in seqs:
        if configured:
            targets[seq] = configured
            continue
        target = last_own_target(store, seq)
        if target is not None:
            targets[seq] = target
        elif store.last_attempt(seq) is not None:
            imported.append(seq)
        else:
            missing.append(seq)
    if imported:
        raise UsageError(f"no target for {_numbers(imported)}: the only one known came from an imported file or a "
                         "recording elsewhere, which is not trusted to choose where a delivery (re-signed with your "
                         "secrets) goes",
                         "pass --to URL if you mean it")
    if missing:
        raise UsageError(f"no target for {_numbers(missing)}: never sent anywhere", "pass --to URL or set forward_to in hookinspect.toml")
    return targets


def _numbers(seqs: list[int]) -> str:
    return ", ".join(f"#{s}" for s in seqs[:5]) + (" …" if len(seqs) > 5 else "")


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
