import asyncio
import time

from hookinspect.forward import Forwarder
from hookinspect.model import Attempt, Headers, Response, SentRequest
from hookinspect.recorder import Recorder
from hookinspect.retry_queue import (
    DEFAULT_SCHEDULE,
    ForwardQueueWorker,
    next_state,
    retry_after_seconds,
)
from hookinspect.store.sqlite import Store
from tests.factories import make_delivery


def attempt(status=None):
    response = None if status is None else Response(status=status, headers=Headers([("Retry-After", "120")] if status == 503 else []))
    return Attempt(delivery_seq=1, kind="queue", target_url="http://t/", request=SentRequest(method="POST", url="http://t/"),
                   response=response, error_kind=None if status else "connect")


def test_success_ends_410_stops_others_back_off():
    assert next_state(attempt(204), 1, 10, DEFAULT_SCHEDULE) == ("done", 0.0)
    assert next_state(attempt(410), 1, 10, DEFAULT_SCHEDULE) == ("dead", 0.0)
    assert next_state(attempt(500), 1, 10, DEFAULT_SCHEDULE) == ("pending", 5.0)
    assert next_state(attempt(None), 2, 10, DEFAULT_SCHEDULE) == ("pending", 300.0)
    assert next_state(attempt(500), 3, 3, DEFAULT_SCHEDULE) == ("dead", 0.0)


def test_retry_after_is_honoured_when_longer():
    assert next_state(attempt(503), 1, 10, DEFAULT_SCHEDULE) == ("pending", 120.0)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30
    assert retry_after_seconds("soon") is None


async def test_a_busy_queue_sends_each_delivery_once(store_path, workspace, target):
    # Captures keep waking the worker, so it reads the queue while sends finish: a read that
    # began before a send was recorded must not send that delivery again.
    forwarder = Forwarder()
    worker = ForwardQueueWorker(workspace, forwarder)
    recorder = Recorder(workspace, route=lambda _d: [target.url], queue_forwards=True)
    running = asyncio.create_task(worker.run())
    try:
        for i in range(600):
            await recorder.record(make_delivery(body=b"%d" % i))  # announces: wakes the worker
        deadline = time.monotonic() + 30
        while len(target.received) < 600 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await forwarder.aclose()
    assert sorted(int(r["body"]) for r in target.received) == list(range(600))
    with Store(store_path) as store:
        assert store.queue_counts() == {"done": 600}
        assert [len(store.attempts(seq)) for seq in range(1, 601)] == [1] * 600
