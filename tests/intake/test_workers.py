import asyncio
import os
import select
import signal
import socket
import sys
from pathlib import Path

import pytest

from hookinspect.intake.workers import (
    bind_shared,
    claim_shared,
    fork_workers,
    reap_exited,
    stop_when_orphaned,
    stop_workers,
    workers_unavailable,
)
from tests.factories import await_until, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers needs Linux")


def wait_for_exit(pid: int) -> None:
    """Until `pid` has exited (a zombie until its parent waits for it)."""
    wait_until(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", timeout=10,
               what=f"process {pid} exiting")


def test_workers_are_available_here():
    assert workers_unavailable() is None


def test_two_workers_bind_the_same_port_and_both_take_connections():
    first = bind_shared("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = bind_shared("127.0.0.1", port)
    try:
        taken = {first: 0, second: 0}
        for _ in range(64):  # the kernel hashes each connection to one of the sockets
            with socket.create_connection(("127.0.0.1", port)):
                ready, _, _ = select.select([first, second], [], [], 5)
                ready[0].accept()[0].close()
                taken[ready[0]] += 1
        assert taken[first] > 0 and taken[second] > 0 and sum(taken.values()) == 64
    finally:
        first.close()
        second.close()


def test_a_port_taken_by_a_plain_socket_is_refused():
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        with pytest.raises(OSError):
            bind_shared("127.0.0.1", plain.getsockname()[1])


def test_workers_exit_with_their_code_and_are_stopped_on_request():
    def run_worker(parent: int) -> int:
        assert parent != os.getpid()
        return 7

    children = fork_workers(2, run_worker)
    assert len(children) == 2
    for pid in children:  # let them finish on their own, so SIGTERM finds them exited
        wait_for_exit(pid)
    assert stop_workers(children) == [7, 7]


def test_a_worker_that_ignores_sigterm_is_killed_after_the_timeout():
    ready_read, ready_write = os.pipe()

    def run_worker(_parent: int) -> int:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(ready_write, b"1")
        signal.pause()  # until killed: SIGTERM is ignored
        return 0

    children = fork_workers(1, run_worker)
    assert os.read(ready_read, 1) == b"1"
    assert stop_workers(children, timeout=0.5) == [-9]


async def test_a_worker_stops_when_its_parent_is_gone(monkeypatch):
    stop = asyncio.Event()
    # A parent pid that is not ours stands for a parent that died: getppid() no longer matches.
    await asyncio.wait_for(stop_when_orphaned(os.getppid() + 1, stop), timeout=5)
    assert stop.is_set()
    still = asyncio.Event()
    looks = []
    real_getppid = os.getppid
    monkeypatch.setattr(os, "getppid", lambda: looks.append(1) or real_getppid())
    watch = asyncio.create_task(stop_when_orphaned(real_getppid(), still))
    await await_until(lambda: len(looks) >= 2, what="two looks at the parent")  # a negative: looked, and no stop
    assert not still.is_set()
    watch.cancel()


def test_ended_workers_are_reaped_and_taken_out_of_the_list():
    children = fork_workers(2, lambda _parent: 3)
    for pid in children:
        wait_for_exit(pid)
    remaining = list(children)
    assert sorted(reap_exited(remaining)) == sorted((pid, 3) for pid in children)
    assert remaining == [] and reap_exited(remaining) == []


def test_the_first_worker_will_not_join_a_port_that_is_already_listening():
    running = claim_shared("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            claim_shared("127.0.0.1", running.getsockname()[1])
        bind_shared("127.0.0.1", running.getsockname()[1]).close()  # the workers of the running one may
    finally:
        running.close()
