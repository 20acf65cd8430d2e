"""The app's side of the writer process: frames cut anywhere by the pipe's reads come out
whole, in order, and a frame cut short waits for the rest; workers forked after the app was
loaded (gunicorn --preload) each record through a writer of their own."""

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hookinspect.record.writer_process import frame, split_frames
from hookinspect.store.sqlite import Store
from tests.factories import (
    free_port,
    readme_block,
    stop_process,
    store_count,
    wait_until,
    wait_until_up,
)


def test_frames_cut_anywhere_come_out_whole_and_in_order():
    items = [("POST", "/webhooks/stripe", b"x" * size) for size in (0, 1, 700, 7_000)]
    data = b"".join(frame(item) for item in items)
    for step in (1, 3, 4, 5, 4096, len(data)):  # what one read of the pipe may hand over
        out, pending = [], b""
        for start in range(0, len(data), step):
            values, pending = split_frames(pending + data[start:start + step])
            out += values
        assert out == items and pending == b""


def test_a_frame_cut_short_waits_for_the_rest():
    whole = frame(("POST", "/x", b"{}"))
    values, pending = split_frames(whole + whole[:7])
    assert values == [("POST", "/x", b"{}")] and pending == whole[:7]


def _writer_pids(root: int) -> list[int]:
    """The writer processes among a process's descendants."""
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if pid != root and b"hookinspect.record.child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:  # ended meanwhile
            continue
        pending += [int(child) for child in children]
    return found


def _is_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_workers_forked_after_the_app_was_loaded_record_through_writers_of_their_own(tmp_path):
    """`gunicorn --preload`: the app (and its writer process) is made in the master, then the
    workers fork. Each worker starts a writer of its own on its first recording; every request
    is recorded once, and no writer outlives the server."""
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    (tmp_path / "app.py").write_text(readme_block("record: flask"))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind",
                               f"127.0.0.1:{port}", "app:app"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    url = f"http://127.0.0.1:{port}"
    writers: list[int] = []
    try:
        wait_until_up(url, server, timeout=30)
        bodies = [json.dumps({"id": f"evt_{n}", "type": "invoice.paid"}).encode() for n in range(40)]

        def post(body: bytes) -> int:
            with httpx.Client(timeout=10) as client:  # a connection each: both workers take some
                return client.post(url + "/webhooks/stripe", content=body).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, bodies)) == {200}
        store = tmp_path / "webhooks.db"
        wait_until(lambda: store.exists() and store_count(store) >= len(bodies), 20, "every request recorded")
        with Store(store, create=False) as opened:
            assert sorted(opened.get(seq).body for seq in opened.seqs()) == sorted(bodies)  # each once
        writers = _writer_pids(server.pid)
        assert 2 <= len(writers) <= 3, writers  # the master's, and one per worker that recorded
    finally:
        stop_process(server)
    wait_until(lambda: all(_is_gone(pid) for pid in writers), 20, "every writer process ended with the server")
