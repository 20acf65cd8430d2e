"""Running `listen`: open the workspace, serve until SIGINT/SIGTERM, with or without workers.

The shell (the CLI) passes what it wants to hear through a `ServeReport`; nothing here
prints. With workers, each process opens its own workspace after the fork (an SQLite
connection must never cross a fork).
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hookinspect.errors import HookinspectError, UsageError
from hookinspect.intake.receiver import (
    ReceiverSettings,
    create_app,
    listen_error,
    start_server,
)
from hookinspect.intake.workers import (
    PARENT_CHECK_SECONDS,
    bind_shared,
    claim_shared,
    fork_workers,
    reap_exited,
    stop_when_orphaned,
    stop_workers,
    workers_unavailable,
)
from hookinspect.net.guard import is_loopback
from hookinspect.net.server import OutOfFilesReporter
from hookinspect.store.owner import owning
from hookinspect.store.schema import check_writable
from hookinspect.store.sqlite import Store
from hookinspect.workspace import Subscriber, Workspace

# With --ack and --workers, how often the first process looks for deliveries the others queued.
QUEUE_POLL_WITH_WORKERS = 0.05


def _ignore(_message: str) -> None:
    return None


@dataclass
class ServeReport:
    """What a serving process tells its shell: all optional, all called from the serving thread."""

    started: Callable[[list[str], int], None] = field(default=lambda _urls, _workers: None)  # (urls, workers)
    warn: Callable[[str], None] = _ignore
    error: Callable[[str], None] = _ignore
    on_change: Subscriber | None = None  # every change of the process's workspace (the live lines)
    begin: Callable[[], None] = lambda: None  # serving has started: start printing
    end: Callable[[], None] = lambda: None  # serving has stopped: stop printing


def check_workers_fit(*, ui: bool, source: object | None) -> None:
    """UsageError when `--workers` cannot be combined with what else was asked for."""
    reason = workers_unavailable()
    if reason is not None:
        raise UsageError(reason, "drop --workers")
    for flag, is_set in (("--ui", ui), ("--source", source is not None)):
        if is_set:
            # Each needs one process: the UI owns the terminal, and a channel must be read once.
            raise UsageError(f"{flag} runs in one process and cannot be combined with --workers", "drop --workers")


def check_store(path: Path, *, is_explicit: bool) -> int:
    """Refuse, with one line, a store `listen` could not write safely; returns its pending forwards.

    An explicit --store in a directory that does not exist is a typo, not a wish to create it
    (the default ./.hookinspect/ is created). A read-only file or directory, and a corrupt file,
    fail now rather than after "listening" has been said.
    """
    if is_explicit and not path.parent.is_dir():
        raise UsageError(f"the directory of --store {path} does not exist", "create it first, or fix the path")
    check_writable(path)
    with Store(path) as store:
        store.check_intact()
        return store.queue_counts().get("pending", 0)


def serve(path: Path, settings: ReceiverSettings, host: str, port: int, report: ServeReport, workers: int = 1,
          durability: str = "power") -> None:
    """Serve until SIGINT or SIGTERM (blocking); every process started here has stopped on return.

    The store's owner lock is held throughout: a second `listen` on the store is refused.
    """
    with owning(path):
        _serve_processes(path, settings, host, port, report, workers, durability)


def _serve_processes(path: Path, settings: ReceiverSettings, host: str, port: int, report: ServeReport,
                     workers: int, durability: str) -> None:
    if workers == 1:
        asyncio.run(_serve(path, settings, host, port, report, durability))
        return
    try:
        first = claim_shared(host, port)
    except OSError as exc:
        raise listen_error(host, port, exc) from None
    port = first.getsockname()[1]  # when 0 was asked for, the others join the port it got
    forward = settings.forward
    if forward is not None and forward.ack:
        forward.queue.idle_poll = QUEUE_POLL_WITH_WORKERS  # the first process forwards what every worker queues

    def run_worker(parent: int) -> int:
        first.close()  # the parent's: were the parent killed, this copy would keep it open with nobody accepting
        if forward is not None:
            forward.works_queue = False
        try:
            sock = bind_shared(host, port)
            asyncio.run(_serve(path, settings, host, port, report, durability, sock=sock, parent=parent))
        except HookinspectError as exc:
            report.error(exc.message)
            return exc.exit_code
        except Exception as exc:  # noqa: BLE001 - a worker's end must be said, the others keep serving
            report.error(f"a worker stopped: {type(exc).__name__}: {exc}")
            return 1
        return 0

    children = fork_workers(workers - 1, run_worker)
    try:
        asyncio.run(_serve(path, settings, host, port, report, durability, sock=first, workers=workers,
                           children=children))
    finally:
        stop_workers(children)


async def _serve(path: Path, settings: ReceiverSettings, host: str, port: int, report: ServeReport,
                 durability: str, sock: socket.socket | None = None, parent: int | None = None,
                 workers: int = 1, children: list[int] | None = None, says_started: bool | None = None) -> None:
    """One process: a worker (`parent` set) only serves and stops with its parent; the first
    process (or one that `says_started`) says where it listens, and when one of its `children` ends."""
    says_started = parent is None if says_started is None else says_started
    asyncio.get_running_loop().set_exception_handler(OutOfFilesReporter(report.warn))
    workspace = await asyncio.to_thread(Workspace, path, create=True, durability=durability)
    try:
        if report.on_change is not None:
            workspace.changes.subscribe(report.on_change)
        runner, urls = await start_server(create_app(workspace, settings), host, port, sock=sock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if parent is not None:
            watch = asyncio.create_task(stop_when_orphaned(parent, stop))
        elif children:
            watch = asyncio.create_task(_report_ended_workers(report, children, workers))
        else:
            watch = None
        if says_started:
            if not is_loopback(host):
                report.warn(f"listening on {host}, reachable from other machines: anyone who can reach it can send "
                            "you requests and read nothing back but your mock answer. Use --host 127.0.0.1 unless you mean it.")
            report.started(urls, workers)
        report.begin()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            if watch is not None:
                watch.cancel()
            report.end()
    finally:
        await asyncio.to_thread(workspace.close)


async def _report_ended_workers(report: ServeReport, children: list[int], workers: int) -> None:
    """A worker that ends early is said at once; the kernel hands its share of connections to the rest."""
    while children:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
        for pid, code in reap_exited(children):
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            report.warn(f"worker {pid} ended ({how}); {len(children) + 1} of {workers} processes still serve")
