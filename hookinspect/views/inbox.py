"""What a list of deliveries is for any UI, once: the TUI and the web page render it.

Today it holds the trash: deleted deliveries are hidden at once and restorable for
UNDO_SECONDS (the UIs' `u` / Undo), then leave the store, in a thread, so a slow or full disk
never stalls a UI's event loop. A delete that fails (a full disk) is one line through
`on_error`, and the deliveries come back (`on_restored`): the store still has them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable

from hookinspect.errors import HookinspectError
from hookinspect.workspace import Workspace

# Deleted deliveries stay restorable this long before they leave the store.
UNDO_SECONDS = 10.0


class Trash:
    """Deliveries deleted but restorable, by token; the newest can be undone without one."""

    def __init__(self, workspace: Workspace, *, seconds: float = UNDO_SECONDS,
                 on_error: Callable[[str], None] = lambda _line: None,
                 on_restored: Callable[[list[int]], None] = lambda _seqs: None) -> None:
        self.workspace = workspace
        self.seconds = seconds
        self.on_error = on_error  # one line, where no request or key press waits for it
        self.on_restored = on_restored  # deliveries a failed delete leaves in the store
        self._entries: dict[str, tuple[list[int], asyncio.TimerHandle]] = {}
        self._deleting: set[asyncio.Task[None]] = set()

    def put(self, seqs: Iterable[int]) -> str:
        """Hide `seqs` now and delete them for good after the undo window; returns the undo token.
        Call on the UI's event loop."""
        numbers = list(seqs)
        token = secrets.token_urlsafe(8)
        timer = asyncio.get_running_loop().call_later(self.seconds, self._expire, token)
        self._entries[token] = (numbers, timer)
        return token

    def undo(self, token: str | None = None) -> list[int] | None:
        """Bring back what `token` (or, without one, the newest delete) hid; None when it is gone."""
        if token is None:
            token = next(reversed(self._entries), None)
        found = self._entries.pop(token, None) if token is not None else None
        if found is None:
            return None
        found[1].cancel()
        return found[0]

    def hidden(self) -> set[int]:
        """Numbers deleted but restorable: lists leave them out."""
        return {seq for seqs, _ in self._entries.values() for seq in seqs}

    def __bool__(self) -> bool:
        return bool(self._entries)

    async def empty(self) -> None:
        """Delete everything in the trash now (a UI closing) and wait for every delete under way."""
        for token in list(self._entries):
            seqs, timer = self._entries.pop(token)
            timer.cancel()
            await self._delete(seqs)
        await asyncio.gather(*self._deleting, return_exceptions=True)

    def _expire(self, token: str) -> None:
        found = self._entries.pop(token, None)
        if found is not None:
            task = asyncio.ensure_future(self._delete(found[0]))
            self._deleting.add(task)
            task.add_done_callback(self._deleting.discard)

    async def _delete(self, seqs: list[int]) -> None:
        try:
            await asyncio.to_thread(self.workspace.delete, seqs)
        except HookinspectError as exc:
            shown = ", ".join(f"#{seq}" for seq in seqs[:5]) + ("…" if len(seqs) > 5 else "")
            self.on_error(f"deleting {shown} failed: {exc.message}; they stay in the store")
            self.on_restored(seqs)
