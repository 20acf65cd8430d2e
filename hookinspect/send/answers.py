"""A backend's answers, diffed: a new answer against the recorded one, or two targets' answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hookinspect.errors import UsageError
from hookinspect.formats.diff import Change, DiffOptions, diff_messages
from hookinspect.formats.targets import validate_target
from hookinspect.model import RECORDED_KIND, Attempt, Delivery
from hookinspect.send.forward import DEFAULT_TIMEOUT, Forwarder, Resigner
from hookinspect.workspace import Workspace


@dataclass
class AnswerDiff:
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
    """The app's own answer where the delivery was recorded, else the answer to its first
    forward, else to its first replay."""
    answered = [a for a in attempts if a.response is not None]
    for kinds in ((RECORDED_KIND,), ("forward", "queue")):
        for attempt in answered:
            if attempt.kind in kinds:
                return attempt
    return answered[0] if answered else None


def diff_attempts(seq: int, a: Attempt | None, b: Attempt | None, options: DiffOptions) -> AnswerDiff:
    for attempt in (a, b):
        if attempt is None or attempt.response is None:
            # Say which side in words: the target that did not answer, by its URL.
            error = f"{attempt.target_url} did not answer: {attempt.error_message or attempt.outcome}" \
                if attempt is not None else "there is no recorded answer to compare with"
            return AnswerDiff(seq, a, b, error=error)
    assert a is not None and b is not None and a.response is not None and b.response is not None
    changes = diff_messages(a.response, b.response, options, status=(a.response.status, b.response.status))
    return AnswerDiff(seq, a, b, changes)


async def diff_answers(
    workspace: Workspace, seqs: list[int], to: str, against: str | None, options: DiffOptions, *,
    concurrency: int = 4, timeout: float = DEFAULT_TIMEOUT,
    resigner_for: Callable[[Delivery], Resigner | None] | None = None,
    on_result: Callable[[AnswerDiff], None] | None = None,
    verify_tls: bool = True,
) -> list[AnswerDiff]:
    """Send each delivery to `to` (and `against`) and compare; every send is recorded as an attempt."""
    to = validate_target(to)
    if against is not None:
        against = validate_target(against)
    store = workspace.store
    deliveries = {seq: store.get(seq) for seq in seqs}
    baselines = {seq: recorded_answer(store.attempts(seq)) for seq in seqs} if against is None else {}
    if against is None:
        missing = [seq for seq in seqs if baselines[seq] is None]
        if missing:
            raise UsageError(f"#{missing[0]} has no recorded answer to compare with",
                             "forward or replay it first, or compare two targets with --against URL")
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(seq: int, forwarder: Forwarder) -> AnswerDiff:
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
            await workspace.add_attempt(attempt)
        result = diff_attempts(seq, a, b, options)
        if on_result is not None:
            on_result(result)
        return result

    async with Forwarder(timeout=timeout, verify_tls=verify_tls) as forwarder:
        return list(await asyncio.gather(*(one(seq, forwarder) for seq in seqs)))
