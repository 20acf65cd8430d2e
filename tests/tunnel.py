"""The tunnel's processes for tests: a relay, `listen --source`, channels and senders on
loopback, each started process tracked and stopped by its PID after the test
(`stop_leftover_processes`, an autouse fixture a module imports to use)."""

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from hookinspect.store.sqlite import Store
from tests.factories import (
    free_port,
    hookinspect_cmd,
    start_listen,
    stop_process,
    store_count,
    wait_until,
    wait_until_up,
)

STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def stop_leftover_processes():
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            stop_process(proc)


def start_listen_tracked(*args, **kwargs) -> tuple[subprocess.Popen, str]:
    proc, url = start_listen(*args, **kwargs)
    STARTED.append(proc)
    return proc, url


def start_relay(data: Path, port: int | None = None, *extra: str) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    proc = subprocess.Popen(hookinspect_cmd("relay", "--port", str(port), "--data", str(data), "--rate", "10000", *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc)
    return proc, url


def new_channel(relay_url: str, public: bool = False) -> dict:
    result = subprocess.run(hookinspect_cmd("channel", "new", "--relay", relay_url, "--json", *(["--public"] if public else [])),
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def stored_bodies(store_path: Path) -> list[bytes]:
    with Store(store_path) as store:
        return [store.get(seq).body for seq in store.seqs()]


def wait_for_count(store_path: Path, count: int, timeout: float = 20.0, proc=None) -> None:
    try:
        wait_until(lambda: store_count(store_path) >= count, timeout, f"{count} deliveries in {store_path}")
    except AssertionError as exc:
        said = stop_process(proc) if proc is not None else ""
        raise AssertionError(f"{exc}; listen said {said}") from None


def send_many(url: str, bodies: list[bytes]) -> None:
    with httpx.Client() as client:
        for body in bodies:
            assert client.post(url, content=body, headers={"Content-Type": "application/json"}).status_code == 200
