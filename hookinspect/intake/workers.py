"""Several receiver processes on one address, for `listen --workers N`.

One Python process runs its event loop and the store's writer thread under one GIL, so a
receiver tops out at about one core. Workers are forked before any event loop or thread
exists; each binds its own SO_REUSEPORT socket on the same address, so the kernel spreads
connections over them, and each commits to the same store. SQLite serialises the workers'
writes; a plain capture batch is one INSERT statement, so the store is locked only while
SQLite runs it, with the GIL released, and the workers rarely wait for each other.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

# How often a worker checks that the process that started it is still there.
PARENT_CHECK_SECONDS = 0.5


def workers_unavailable() -> str | None:
    """Why this platform cannot run several workers, or None when it can."""
    if not sys.platform.startswith("linux"):
        # Elsewhere SO_REUSEPORT does not spread connections over the sockets (or fork is missing).
        return "--workers needs Linux (the kernel must spread connections over the workers' sockets)"
    return None


def claim_shared(host: str, port: int) -> socket.socket:
    """The first worker's socket, refused (OSError) if anything listens on the port already.

    SO_REUSEPORT would let a second `listen --workers` (of the same user) join the port of
    a running one and silently take half of its connections; a plain bind first says no.
    """
    if port != 0:
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as one process would bind
            probe.bind((host.strip("[]"), port))
    return bind_shared(host, port)


def bind_shared(host: str, port: int) -> socket.socket:
    """A listening socket that other workers can bind too (the port is chosen if 0)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def fork_workers(count: int, run_worker: Callable[[int], int]) -> list[int]:
    """Start `count` child processes that each run `run_worker(parent_pid)` and exit with its code.

    Returns the children's pids in the parent; never returns in a child.
    """
    parent = os.getpid()
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # Ctrl+C reaches the whole process group; the parent stops its workers itself,
                # after its own server, so each worker gets one orderly SIGTERM.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                code = run_worker(parent)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    return children


async def stop_when_orphaned(parent: int, stop: asyncio.Event) -> None:
    """Set `stop` once the parent is gone (even after kill -9), so no worker outlives it."""
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        await asyncio.sleep(PARENT_CHECK_SECONDS)


def reap_exited(children: list[int]) -> list[tuple[int, int]]:
    """(pid, exit code) of the workers that have ended, which are taken out of `children`."""
    ended = []
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.remove(pid)
            ended.append((pid, os.waitstatus_to_exitcode(status)))
    return ended


def stop_workers(children: list[int], timeout: float = 30.0) -> list[int]:
    """SIGTERM each worker and wait for it; returns the exit codes (-N: killed by signal N)."""
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    codes = []
    for pid in children:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes.append(os.waitstatus_to_exitcode(status))
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)  # a worker stuck past the timeout: its writes are committed or not acknowledged
                codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
                break
            time.sleep(0.02)
    return codes
