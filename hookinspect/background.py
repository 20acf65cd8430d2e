"""The receiver on its own thread, event loop and store connections, for `listen --ui`.

In one loop with the terminal UI, a sender waited whenever the UI rendered a large body or
ran a filter over a big store. Here the receiver has a loop of its own and its own Workspace
on the same store file (SQLite serialises the two writers): the UI learns of captures from
the change notifications below, and reads them through its own connection.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from hookinspect.errors import HookinspectError, NetworkError
from hookinspect.receiver import ReceiverSettings, create_app, start_server
from hookinspect.workspace import Subscriber, Workspace

START_TIMEOUT = 30.0


class BackgroundReceiver:
    """`start()` returns once the receiver listens (or raises why it cannot); `stop()` drains and closes."""

    def __init__(self, path: str | Path, settings: ReceiverSettings, host: str, port: int, *,
                 durability: str = "power", on_change: Subscriber | None = None) -> None:
        self.path = Path(path)
        self.settings = settings
        self.host, self.port = host, port
        self.durability = durability
        self.on_change = on_change  # called on the receiver's thread: must be thread-safe
        self.urls: list[str] = []
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="hookinspect-receiver", daemon=True)

    def start(self) -> list[str]:
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            raise NetworkError(f"the receiver did not start within {START_TIMEOUT:g} s")
        if self._error is not None:
            raise self._error
        return self.urls

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which re-raises it on the caller's thread
            self._error = exc if isinstance(exc, HookinspectError) else NetworkError(f"the receiver stopped: {exc}")
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        with Workspace(self.path, create=True, durability=self.durability) as workspace:
            unsubscribe = workspace.changes.subscribe(self.on_change) if self.on_change is not None else None
            runner, self.urls = await start_server(create_app(workspace, self.settings), self.host, self.port)
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()
                if unsubscribe is not None:
                    unsubscribe()
