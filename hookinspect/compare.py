"""Compare a backend's answers: a new answer with the recorded one, or two targets' answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookinspect.diff import Change, DiffOptions, compare_messages
from hookinspect.errors import UsageError
from hookinspect.forward import DEFAULT_TIMEOUT, Forwarder, Resigner, validate_target
from hookinspect.model import Attempt, Delivery
from hookinspect.store.sqlite import Store
from hookinspect.store.writer import GroupCommitWriter


@dataclass
class ComparisonResult:
    seq: int
    a: Attempt | None  # the recorded attempt, or the send to the first target
    b: Attempt | None
    changes: list[Change] = field(default_factory=list)
    error: str | None = None  # no comparison possible (a side got no response)

    @property
    def differs(self) -> bool:
        return bool(self.changes) or self.error is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "a": {"target": self.a.target_url, "outcome": self.a.outcome} if self.a else None,
            "b": {"target": self.b.target_url, "outcome": self.b.outcome} if self.b else None,
            "error": self.error,
            "changes": [c.to_dict() for c in self.changes],
        }


def recorded_answer(attempts: list[Attempt]) -> Attempt | None:
    """The answer recorded when the delivery was first forwarded (else first replayed)."""
    answered = [a for a in attempts if a.response is not None]
    for attempt in answered:
        if attempt.kind in ("forward", "queue"):
            return attempt
    return answered[0] if answered else None


def compare_attempts(seq: int, a: Attempt | None, b: Attempt | None, options: DiffOptions) -> ComparisonResult:
    for side, attempt in (("a", a), ("b", b)):
        if attempt is None or attempt.response is None:
            reason = attempt.error_message if attempt is not None else "no recorded answer"
            return ComparisonResult(seq, a, b, error=f"{side}: {reason}")
    assert a is not None and b is not None and a.response is not None and b.response is not None
    changes = compare_messages(a.response, b.response, options, status=(a.response.status, b.response.status))
    return ComparisonResult(seq, a, b, changes)


async def compare_answers(
    store_path: Path, seqs: list[int], to: str, against: str | None, options: DiffOptions, *,
    concurrency: int = 4, timeout: float = DEFAULT_TIMEOUT,
    resigner_for: Callable[[Delivery], Resigner | None] | None = None,
    on_result: Callable[[ComparisonResult], None] | None = None,
    verify_tls: bool = True,
) -> list[ComparisonResult]:
    """Send each delivery to `to` (and `against`) and compare; every send is recorded as an attempt."""
    validate_target(to)
    if against is not None:
        validate_target(against)
    with Store(store_path, create=False) as store:
        deliveries = {seq: store.get(seq) for seq in seqs}
        baselines = {seq: recorded_answer(store.attempts(seq)) for seq in seqs} if against is None else {}
    if against is None:
        missing = [seq for seq in seqs if baselines[seq] is None]
        if missing:
            raise UsageError(f"#{missing[0]} has no recorded answer to compare with",
                             "forward or replay it first, or compare two targets with --against URL")
    semaphore = asyncio.Semaphore(max(1, concurrency))
    writer = GroupCommitWriter(store_path)
    await asyncio.to_thread(writer.start)

    async def one(seq: int, forwarder: Forwarder) -> ComparisonResult:
        delivery = deliveries[seq]
        resign = resigner_for(delivery) if resigner_for is not None else None
        async with semaphore:
            if against is None:
                a = baselines[seq]
                b = await forwarder.send(delivery, to, kind="diff", resign=resign)
                sent = [b]
            else:
                a, b = await asyncio.gather(forwarder.send(delivery, to, kind="diff", resign=resign),
                                            forwarder.send(delivery, against, kind="diff", resign=resign))
                sent = [a, b]
        for attempt in sent:
            await writer.add_attempt(attempt)
        result = compare_attempts(seq, a, b, options)
        if on_result is not None:
            on_result(result)
        return result

    try:
        async with Forwarder(timeout=timeout, verify_tls=verify_tls) as forwarder:
            return list(await asyncio.gather(*(one(seq, forwarder) for seq in seqs)))
    finally:
        await asyncio.to_thread(writer.close)
