"""The receiver in a process of its own, for `listen --ui`.

In one process with the terminal UI, a sender waited whenever the UI rendered a large body or
ran a filter over a big store: one event loop (and, with a thread, one GIL) served both. Here
the receiver is forked before the UI starts, serves with its own workspace on the same store
file (SQLite serialises the two writers), and tells the UI through a pipe of JSON lines what
the store cannot: that it listens, what it refused, the relay's state, a store that cannot
take more. What it stored the UI finds in the store itself (Workspace.follow). The pipe never
makes capture wait: a line that does not fit is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hookinspect.errors import HookinspectError, NetworkError
from hookinspect.intake.receiver import ReceiverEvent, ReceiverSettings
from hookinspect.intake.workers import fork_workers, stop_workers
from hookinspect.workspace import ChangeKind, StoreChange

START_TIMEOUT = 30.0
# The receiver's own news about its store (the rest the UI finds in the store).
TOLD_CHANGES = frozenset({ChangeKind.FAILING, ChangeKind.RECOVERED})


class ReceiverProcess:
    """`start()` forks the receiver and returns its URLs once it listens (or raises why it cannot);
    `attach(on_message)` hands each later message to the caller's event loop; `stop()` ends it."""

    def __init__(self, path: str | Path, settings: ReceiverSettings, host: str, port: int, *,
                 durability: str = "power") -> None:
        self.path = Path(path)
        self.settings = settings
        self.host, self.port = host, port
        self.durability = durability
        self.urls: list[str] = []
        self.pid: int | None = None
        self._read_fd: int | None = None
        self._pending = b""

    def start(self) -> list[str]:
        read_fd, write_fd = os.pipe()
        [self.pid] = fork_workers(1, lambda parent: self._serve_child(parent, read_fd, write_fd))
        os.close(write_fd)
        self._read_fd = read_fd
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            message = self._next_message(deadline)
            if message is None:
                self.stop()
                raise NetworkError("the receiver ended before it listened")
            if message["t"] == "started":
                self.urls = message["urls"]
                return self.urls
            if message["t"] == "error":
                self.stop()
                raise HookinspectError(message["message"])

    def attach(self, on_message: Callable[[dict[str, Any]], None]) -> None:
        """Read the receiver's lines on the running event loop from now on."""
        assert self._read_fd is not None
        fd = self._read_fd
        os.set_blocking(fd, False)
        for message in self._complete_lines():  # what arrived before attaching
            on_message(message)

        def readable() -> None:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not chunk:  # the receiver ended
                asyncio.get_running_loop().remove_reader(fd)
                on_message({"t": "ended"})
                return
            self._pending += chunk
            for message in self._complete_lines():
                on_message(message)

        asyncio.get_running_loop().add_reader(fd, readable)

    def detach(self) -> None:
        if self._read_fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._read_fd)

    def stop(self) -> None:
        if self.pid is not None:
            stop_workers([self.pid])
            self.pid = None
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None

    def _complete_lines(self) -> list[dict[str, Any]]:
        *lines, self._pending = self._pending.split(b"\n")
        return [json.loads(line) for line in lines if line]

    def _next_message(self, deadline: float) -> dict[str, Any] | None:
        assert self._read_fd is not None
        while True:
            messages = self._complete_lines()
            if messages:
                # Only the first matters during start-up; the rest wait for attach().
                self._pending = b"".join(json.dumps(m).encode() + b"\n" for m in messages[1:]) + self._pending
                return messages[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._read_fd], [], [], remaining)[0]:
                return None
            chunk = os.read(self._read_fd, 65536)
            if not chunk:
                return None
            self._pending += chunk

    # -- in the child --------------------------------------------------------------------

    def _serve_child(self, parent: int, read_fd: int, write_fd: int) -> int:
        from hookinspect.intake.serve import (  # the serving loop of `listen` itself
            ServeReport,
            _serve,
        )

        os.close(read_fd)
        os.set_blocking(write_fd, False)

        def tell(message: dict[str, Any]) -> None:
            try:
                os.write(write_fd, json.dumps(message).encode() + b"\n")
            except (BlockingIOError, BrokenPipeError):
                pass  # the UI is busy or gone: capture never waits for it

        def on_change(change: StoreChange) -> None:
            if change.kind in TOLD_CHANGES:
                tell({"t": "event", "kind": change.kind, "message": change.message})

        self.settings.on_event = lambda event: tell({"t": "event", "kind": event.kind, "message": event.message})
        report = ServeReport(started=lambda urls, _workers: tell({"t": "started", "urls": urls}),
                             warn=lambda line: tell({"t": "event", "kind": "warning", "message": line}),
                             error=lambda line: tell({"t": "error", "message": line}), on_change=on_change)
        try:
            asyncio.run(_serve(self.path, self.settings, self.host, self.port, report, self.durability, parent=parent,
                               says_started=True))
        except HookinspectError as exc:
            tell({"t": "error", "message": exc.message})
            return exc.exit_code
        except Exception as exc:  # noqa: BLE001 - said to the UI in one line, never a traceback over it
            tell({"t": "error", "message": f"the receiver stopped: {type(exc).__name__}: {exc}"})
            return 1
        return 0


def receiver_event(message: dict[str, Any]) -> ReceiverEvent:
    """A receiver event line as the ReceiverEvent it was."""
    return ReceiverEvent(message.get("kind", "rejected"), message=message.get("message", ""))
