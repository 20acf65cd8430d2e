"""Recording never stands in the app's way: a full disk or a busy store drops recordings (counted,
said once, and once more when it works again), and every request is still answered as the
app answers it. The middleware runs in uvicorn in this process, so its counts can be read."""

import asyncio
import logging
import sqlite3
import threading

import httpx
import pytest

from hookinspect.record import ASGIRecorder
from hookinspect.store.sqlite import Store
from tests.factories import fill_disk, free_port, store_count, wait_until


async def app(scope, receive, send):
    """A minimal ASGI app: reads the body, answers how long it was."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


class InThreadServer:
    """uvicorn serving `app` on a free loopback port, in a thread of this process."""

    def __init__(self, asgi_app) -> None:
        uvicorn = pytest.importorskip("uvicorn")
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(asgi_app, host="127.0.0.1", port=self.port, log_level="error",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 15, "uvicorn started")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def post_many(url: str, count: int, pad: int = 0) -> list[int]:
    async def run() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(*(client.post(f"{url}/webhooks/x", content=b'{"n":%d,"pad":"%s"}' % (n, b"x" * pad))
                                             for n in range(count)))
        return [answer.status_code for answer in answers]
    return asyncio.run(run())


def test_a_full_disk_drops_recordings_counted_and_the_app_answers_every_request(small_filesystem, caplog):
    store = small_filesystem / "webhooks.db"
    Store(store).close()  # the store exists; then the disk fills
    recorder = ASGIRecorder(app, store=str(store), paths=["/webhooks/*"])
    server = InThreadServer(recorder)
    caplog.set_level(logging.WARNING, logger="hookinspect.record")
    try:
        filler = fill_disk(small_filesystem)
        assert post_many(server.url, 200) == [202] * 200
        wait_until(lambda: recorder.sink.dropped + recorder.sink.recorded == 200, 20, "every recording settled")
        assert recorder.sink.dropped > 0
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and "dropped" in said[0] and "full" in said[0], said
        filler.unlink()  # room again: recording works again by itself
        assert post_many(server.url, 5) == [202] * 5
        wait_until(lambda: recorder.sink.recorded >= 5 and store_count(store) >= 5, 20, "recordings after the disk has room")
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 2 and "works again" in said[1] and str(recorder.sink.dropped) in said[1]
    finally:
        server.stop()
        recorder.close()


def test_a_busy_store_fills_the_queue_and_what_does_not_fit_is_dropped_not_waited_for(tmp_path, caplog):
    store = tmp_path / "webhooks.db"
    Store(store).close()
    recorder = ASGIRecorder(app, store=str(store), paths=["/webhooks/*"], queue=50)
    server = InThreadServer(recorder)
    caplog.set_level(logging.WARNING, logger="hookinspect.record")
    blocker = sqlite3.connect(store, timeout=1)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the store: the recorder's writer waits
    try:
        # Answered while nothing can be stored; 64 KiB each, so that the pipe to the writer (1 MiB)
        # and its queue (50) fill at once.
        assert post_many(server.url, 200, pad=64 * 1024) == [202] * 200
        wait_until(lambda: recorder.sink.dropped > 0, 20, "recordings dropped while the store is busy")
        blocker.rollback()
        wait_until(lambda: recorder.sink.dropped + recorder.sink.recorded == 200, 60, "every recording settled")
        assert store_count(store) == recorder.sink.recorded
        assert any("dropped" in r.getMessage() for r in caplog.records)
    finally:
        blocker.close()
        server.stop()
        recorder.close()


def test_a_writer_process_that_dies_is_started_again_and_what_it_held_is_counted(tmp_path):
    store = tmp_path / "webhooks.db"
    recorder = ASGIRecorder(app, store=str(store), paths=["/webhooks/*"])
    server = InThreadServer(recorder)
    try:
        assert post_many(server.url, 20) == [202] * 20
        wait_until(lambda: recorder.sink.recorded == 20, 20, "20 recorded")
        first = recorder.sink._child
        first.kill()
        first.wait(10)
        sent = [20]

        def restarted() -> bool:  # the next request after its end (a second after its start, at the soonest)
            sent[0] += len(post_many(server.url, 1))
            return recorder.sink._child is not first and recorder.sink._child.poll() is None
        wait_until(restarted, 15, "another writer process")
        assert post_many(server.url, 30) == [202] * 30
        sent[0] += 30
        wait_until(lambda: recorder.sink.recorded + recorder.sink.dropped == sent[0], 30, "every recording settled")
        assert store_count(store) == recorder.sink.recorded >= 20
    finally:
        server.stop()
        recorder.close()


def test_thread_mode_records_in_the_apps_own_process(tmp_path):
    store = tmp_path / "webhooks.db"
    recorder = ASGIRecorder(app, store=str(store), paths=["/webhooks/*"], writer="thread")
    server = InThreadServer(recorder)
    try:
        assert post_many(server.url, 10) == [202] * 10
        # The count follows the commit: wait for both.
        wait_until(lambda: store_count(store) == 10 and recorder.sink.recorded == 10, 20, "10 recorded by a thread")
    finally:
        server.stop()
        recorder.close()


def test_without_settings_the_app_is_the_app(monkeypatch):
    monkeypatch.delenv("HOOKINSPECT_RECORD", raising=False)
    recorder = ASGIRecorder(app)
    assert recorder.sink is None
    server = InThreadServer(recorder)
    try:
        assert post_many(server.url, 3) == [202] * 3
    finally:
        server.stop()
