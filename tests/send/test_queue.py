import asyncio
import contextlib
import sqlite3
import time

import httpx
import pytest
from aiohttp import web

from hookinspect.formats.samples import build_sample_request, find_sample
from hookinspect.intake.receiver import (
    RECORDER_KEY,
    ForwardSettings,
    ReceiverSettings,
    create_app,
    start_server,
)
from hookinspect.recorder import Recorder
from hookinspect.send.forward import Forwarder
from hookinspect.send.queue import ForwardQueueWorker, QueuePolicy
from hookinspect.send.retries import retry_after_seconds
from hookinspect.signing.registry import Secrets, annotate_delivery, resigner_for
from hookinspect.store.sqlite import Store
from hookinspect.values import now_us
from hookinspect.workspace import StoreChange
from tests.factories import RecordingTarget, await_until, fill_disk, free_port, make_delivery

SECRET = "whsec_queue"


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
        await await_until(lambda: workspace.store.queue_counts() == {"done": 600}, timeout=60)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await forwarder.aclose()
    assert sorted(int(r["body"]) for r in target.received) == list(range(600))
    with Store(store_path) as store:
        assert store.queue_counts() == {"done": 600}
        assert [len(store.attempts(seq)) for seq in range(1, 601)] == [1] * 600


@contextlib.asynccontextmanager
async def acking_receiver(workspace, target_url, policy=None, workers=None):
    """`listen --ack --forward-to target_url --secret stripe=...` in this test's event loop; its
    queue worker is appended to `workers` when given."""
    secrets = Secrets()
    secrets.add("stripe", SECRET)
    policy = policy or QueuePolicy()
    policy.resigner_for = lambda delivery: resigner_for(delivery, secrets)
    forward = ForwardSettings(forwarder=Forwarder(timeout=5), route=lambda _d: [target_url], ack=True, queue=policy)
    settings = ReceiverSettings(inspect=lambda d: annotate_delivery(d, secrets), forward=forward)
    runner, urls = await start_server(create_app(workspace, settings), "127.0.0.1", 0)
    if workers is not None:
        workers.append(runner.app[RECORDER_KEY].send_first.__self__)
    try:
        yield urls[0]
    finally:
        await runner.cleanup()


async def post_stripe_events(url: str, count: int, path: str = "/stripe") -> None:
    async with httpx.AsyncClient() as client:
        for i in range(count):
            request = build_sample_request(find_sample("stripe/payment_intent.succeeded"), url + path, SECRET,
                                           [f"data.object.metadata.n={i}"])
            answer = await client.post(request.url, content=request.body, headers=request.headers.pairs())
            assert answer.status_code == 200  # acknowledged at once, target or not


def strict_stripe_backend(tolerance: float):
    """A handler that accepts only signatures younger than `tolerance` seconds, as Stripe's library checks."""
    import stripe

    def handle(request, body):
        try:
            stripe.WebhookSignature.verify_header(body.decode(), request.headers.get("Stripe-Signature", ""),
                                                  SECRET, tolerance=tolerance)
        except stripe.SignatureVerificationError as exc:
            return web.Response(status=400, text=str(exc))
        return web.json_response({"ok": True})

    return handle


async def test_a_target_down_longer_than_the_signature_tolerance_gets_every_delivery_freshly_signed(workspace):
    port = free_port()
    target_url = f"http://127.0.0.1:{port}/"
    tolerance = 2.0  # short, so the test is quick; a busy machine needs the slack between signing and checking
    async with acking_receiver(workspace, target_url, QueuePolicy(probe_seconds=0.5)) as url:
        signed_at = time.time()
        await post_stripe_events(url, 50)
        await await_until(lambda: workspace.store.execute("SELECT count(*) FROM attempts").fetchone()[0] >= 1,
                         what="a first try against the dead target")
        # The outage outlasts the backend's tolerance: only a signature made at send time passes.
        await await_until(lambda: time.time() - signed_at > tolerance + 0.5, what="the tolerance to pass")
        target = RecordingTarget()
        target.handler = strict_stripe_backend(tolerance)
        await target.start(port)
        back = time.monotonic()
        try:
            await await_until(lambda: workspace.store.queue_counts() == {"done": 50}, timeout=15,
                             what="all 50 delivered after the target came back")
            delivered_in = time.monotonic() - back
        finally:
            await target.stop()
    assert len(target.received) == 50  # once each: the probe's failure was not a reason to send twice
    assert delivered_in < 15
    statuses = [a.outcome for seq in workspace.store.seqs() for a in workspace.store.attempts(seq)]
    assert statuses.count("200") == 50 and "400" not in statuses


async def test_one_failing_delivery_does_not_hold_back_the_others(workspace):
    target = RecordingTarget()
    target.handler = lambda request, body: web.Response(status=500 if request.path == "/bad" else 200)
    await target.start()
    try:
        async with acking_receiver(workspace, target.url + "/") as url:
            async with httpx.AsyncClient() as client:
                await client.post(url + "/bad", content=b'{"bad":true}')
                for i in range(49):
                    await client.post(url + "/good", content=b'{"i":%d}' % i)
            await await_until(lambda: workspace.store.queue_counts().get("done") == 49, timeout=10,
                             what="the 49 good deliveries sent while the bad one waits for its retry")
    finally:
        await target.stop()
    [bad] = workspace.store.queue_items(seqs=[1])
    assert bad.state == "pending" and bad.tries == 1 and bad.last_outcome == "500"
    assert bad.next_at_us - now_us() > 3_000_000  # its own schedule: 5 s after the first try


async def test_ordered_sends_one_at_a_time_in_order(workspace):
    target = RecordingTarget()
    await target.start()
    try:
        async with acking_receiver(workspace, target.url + "/", QueuePolicy(ordered=True)) as url:
            async with httpx.AsyncClient() as client:
                for i in range(30):
                    await client.post(url + "/o", content=b"%d" % i)
            await await_until(lambda: workspace.store.queue_counts() == {"done": 30})
    finally:
        await target.stop()
    assert [int(r["body"]) for r in target.received] == list(range(30))


async def test_a_successful_manual_replay_settles_the_queued_item(workspace):
    from hookinspect.send.replay import replay_deliveries

    port = free_port()
    target_url = f"http://127.0.0.1:{port}/"
    policy = QueuePolicy(probe_seconds=60)  # the queue itself would not try again during the test
    async with acking_receiver(workspace, target_url, policy) as url:
        async with httpx.AsyncClient() as client:
            await client.post(url + "/x", content=b"{}")
        await await_until(lambda: workspace.store.execute("SELECT count(*) FROM attempts").fetchone()[0] == 1)
        target = await RecordingTarget().start(port)
        try:
            [attempt] = await replay_deliveries(workspace, {1: target_url})
        finally:
            await target.stop()
    assert attempt.is_success
    [item] = workspace.store.queue_items(("done",), seqs=[1])
    assert item.last_outcome == "replay: 200" and len(target.received) == 1


async def test_a_paused_target_gets_nothing_until_resumed(workspace):
    target = await RecordingTarget().start()
    try:
        workers = []
        async with acking_receiver(workspace, target.url + "/", QueuePolicy(idle_poll=0.05), workers) as url:
            await workspace.writer.submit(lambda store: store.queue_pause(target.url + "/", now_us()))
            # A pause made elsewhere (`queue pause` in another process) is seen at the queue's
            # next look: a send that starts before that look still goes out.
            await await_until(lambda: bool(workers[0]._paused), what="the queue seeing the pause")
            async with httpx.AsyncClient() as client:
                for _ in range(3):
                    await client.post(url + "/p", content=b"{}")
            await await_until(lambda: workspace.store.queue_counts() == {"pending": 3})
            assert target.received == []
            await workspace.writer.submit(lambda store: store.queue_resume(target.url + "/"))
            await await_until(lambda: workspace.store.queue_counts() == {"done": 3})
    finally:
        await target.stop()


async def test_a_target_that_is_down_does_not_hold_back_another_one(workspace):
    healthy = await RecordingTarget().start()
    down = f"http://127.0.0.1:{free_port()}/"
    secrets = Secrets()
    forward = ForwardSettings(forwarder=Forwarder(timeout=5), route=lambda _d: [down, healthy.url + "/"], ack=True,
                              queue=QueuePolicy(probe_seconds=60, concurrency=2))
    settings = ReceiverSettings(inspect=lambda d: annotate_delivery(d, secrets), forward=forward)
    runner, urls = await start_server(create_app(workspace, settings), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            for i in range(200):  # a backlog far larger than one look at the queue reads
                await client.post(urls[0] + "/both", content=b"%d" % i)
        await await_until(lambda: len(healthy.received) == 200, timeout=20,
                          what="the healthy target getting all 200 while the other is down")
        # Received is not yet settled: the last answers may still be on their way back.
        await await_until(lambda: workspace.store.queue_counts() == {"done": 200, "pending": 200})
    finally:
        await runner.cleanup()
        await healthy.stop()
    assert sorted(int(r["body"]) for r in healthy.received) == list(range(200))


@contextlib.asynccontextmanager
async def working_queue(workspace, target_url, policy=None):
    """A worker and a recorder as `listen --source URL --forward-to target_url` wires them."""
    forwarder = Forwarder(timeout=5)
    worker = ForwardQueueWorker(workspace, forwarder, policy)
    recorder = Recorder(workspace, route=lambda _d: [target_url], queue_forwards=True)
    recorder.send_first = worker.send_first
    running = asyncio.create_task(worker.run())
    try:
        yield recorder, worker
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await forwarder.aclose()


@contextlib.contextmanager
def writer_held(workspace):
    """The store's writer busy until the block ends: nothing commits meanwhile."""
    import threading
    gate = threading.Event()
    workspace.writer.submit(lambda store: None, blocking=True)  # started
    held = asyncio.ensure_future(workspace.writer.submit(lambda store: gate.wait(30)))
    try:
        yield
    finally:
        gate.set()
        del held


async def test_a_relay_delivery_is_forwarded_while_it_is_being_stored(workspace, target):
    async with working_queue(workspace, target.url + "/") as (recorder, worker):
        with writer_held(workspace):
            recording = asyncio.ensure_future(recorder.record(make_delivery(body=b"early"), is_durable=False,
                                                              send_at_once=True))
            await await_until(lambda: len(target.received) == 1)  # sent, though not committed yet
            assert not recording.done()
        recorded = await recording
        await await_until(lambda: workspace.store.queue_counts() == {"done": 1})
    [item] = workspace.store.queue_items(("done",), seqs=[recorded.delivery.seq])
    assert item.tries == 1 and item.last_outcome == "200"
    [noted] = workspace.store.attempts(recorded.delivery.seq)
    assert noted.kind == "queue" and noted.response.status == 200
    assert [r["body"] for r in target.received] == [b"early"]  # once: the queue did not send it again


async def test_other_deliveries_wait_for_their_commit_before_the_queue_sends_them(workspace, target):
    async with working_queue(workspace, target.url + "/") as (recorder, worker):
        with writer_held(workspace):
            recording = asyncio.ensure_future(recorder.record(make_delivery(body=b"later")))
            with pytest.raises(AssertionError):
                await await_until(lambda: target.received, timeout=0.3)
        await recording
        await await_until(lambda: workspace.store.queue_counts() == {"done": 1})
    assert [r["body"] for r in target.received] == [b"later"]


async def test_a_first_send_whose_delivery_is_not_stored_leaves_the_queue_working(workspace, target):
    async with working_queue(workspace, target.url + "/") as (recorder, worker):
        await recorder.record(make_delivery(body=b"one", origin="relay#1"), is_durable=False, send_at_once=True)
        with pytest.raises(sqlite3.IntegrityError):  # the same relay event again: not stored twice
            await recorder.record(make_delivery(body=b"one", origin="relay#1"), is_durable=False, send_at_once=True)
        for i in range(20):
            await recorder.record(make_delivery(body=b"%d" % i, origin=f"relay#{i + 2}"), is_durable=False,
                                  send_at_once=True)
        await await_until(lambda: workspace.store.queue_counts() == {"done": 21})
    # The repeated event went out before its store refused it (the relay would send it again
    # anyway); it left no attempt and no item behind, and took no slot for good.
    assert sum(len(workspace.store.attempts(seq)) for seq in range(1, 22)) == 21
    assert len(target.received) == 22


async def test_paused_or_ordered_targets_get_no_first_send(workspace, target):
    await workspace.writer.submit(lambda store: store.queue_pause(target.url + "/", now_us()))
    async with working_queue(workspace, target.url + "/", QueuePolicy(idle_poll=0.05)) as (recorder, worker):
        await await_until(lambda: bool(worker._paused))  # its first look saw the pause
        await recorder.record(make_delivery(body=b"paused"), is_durable=False, send_at_once=True)
        await await_until(lambda: workspace.store.queue_counts() == {"pending": 1})
        assert target.received == []
        await workspace.writer.submit(lambda store: store.queue_resume(target.url + "/"))
        await await_until(lambda: workspace.store.queue_counts() == {"done": 1})
    async with working_queue(workspace, target.url + "/", QueuePolicy(ordered=True)) as (recorder, worker):
        with writer_held(workspace):
            recording = asyncio.ensure_future(recorder.record(make_delivery(body=b"ordered"), is_durable=False,
                                                              send_at_once=True))
            with pytest.raises(AssertionError):
                await await_until(lambda: len(target.received) > 1, timeout=0.3)
        await recording
        await await_until(lambda: workspace.store.queue_counts() == {"done": 2})
    assert [r["body"] for r in target.received] == [b"paused", b"ordered"]


async def test_the_worker_stops_when_cancelled_as_it_is_woken(workspace, target):
    # On Python 3.11, asyncio.wait_for returns instead of raising when the cancel and the
    # wake-up land together, and a worker built on it never stopped (`listen` hung on exit).
    for i in range(5):
        forwarder = Forwarder(timeout=5)
        worker = ForwardQueueWorker(workspace, forwarder)
        recorder = Recorder(workspace, route=lambda _d: [target.url + "/"], queue_forwards=True)
        running = asyncio.create_task(worker.run())
        try:
            await recorder.record(make_delivery(body=b"%d" % i))
            await await_until(lambda i=i: workspace.store.queue_counts() == {"done": i + 1})
            workspace.changes.announce(StoreChange("recovered", message="wake up"))  # wakes the idle worker
            running.cancel()
            await asyncio.wait([running], timeout=5)
            assert running.done(), "the worker went on after it was cancelled"
        finally:
            running.cancel()
            await forwarder.aclose()


async def test_a_target_asking_for_an_absurd_retry_after_waits_a_day_at_most(workspace, target):
    # A stranger's backend (or a proxy) may send any digits; the queue must neither crash on
    # them nor send again at once.
    target.status = 503
    target.headers = {"Retry-After": "9" * 30}
    async with working_queue(workspace, target.url + "/") as (recorder, worker):
        await recorder.record(make_delivery(body=b"once"))
        await await_until(lambda: workspace.store.queue_items(("pending",)) and
                          workspace.store.queue_items(("pending",))[0].tries == 1)
        [item] = workspace.store.queue_items(("pending",))
        assert 23 * 3600 < (item.next_at_us - now_us()) / 1e6 <= 24 * 3600
        assert len(target.received) == 1
    assert retry_after_seconds("\u0661\u0662") is None  # Arabic-Indic digits are not delta-seconds


async def test_a_full_disk_sends_each_delivery_once_and_writes_its_outcome_when_there_is_room(small_filesystem, target):
    from hookinspect.workspace import Workspace

    workspace = Workspace(small_filesystem / "store.db", create=True)
    try:
        await Recorder(workspace, route=lambda _d: [target.url + "/"], queue_forwards=True).record(
            make_delivery(body=b"once"))
        filler = fill_disk(small_filesystem)  # not even the log can grow
        async with working_queue(workspace, target.url + "/", QueuePolicy(idle_poll=0.05)) as (_recorder, worker):
            await await_until(lambda: worker.unwritten == 1)  # sent; its outcome cannot be written
            looked = worker.looks
            # The old queue sent it again at its next look (2,210 times in 3 s); five looks later
            # it has still gone out once.
            await await_until(lambda: worker.looks >= looked + 5)
            assert len(target.received) == 1
            filler.unlink()  # room again: the outcome is written, nothing is sent again
            await await_until(lambda: workspace.store.queue_counts() == {"done": 1})
        assert len(target.received) == 1 and len(workspace.store.attempts(1)) == 1
    finally:
        workspace.close()


async def test_a_send_that_raises_is_a_failed_try_on_its_schedule_not_a_loop(workspace, target):
    def flawed(_delivery):
        raise RuntimeError("a flaw in re-signing")

    policy = QueuePolicy(max_attempts=2, schedule=(0.0, 0.05))
    policy.resigner_for = flawed
    async with working_queue(workspace, target.url + "/", policy) as (recorder, worker):
        await recorder.record(make_delivery(body=b"x"))
        await await_until(lambda: workspace.store.queue_counts() == {"dead": 1})  # the old queue looped on it
    [item] = workspace.store.queue_items(("dead",))
    assert item.tries == 2 and target.received == []
    assert [a.error_message for a in workspace.store.attempts(1)] == ["not sent: RuntimeError: a flaw in re-signing"] * 2


async def test_an_item_cancelled_while_it_is_being_sent_stays_cancelled(workspace, target):
    # `queue cancel` from another process while the send is under way: the send finishes, and
    # its outcome does not put the item back to pending or done.
    target.delay = 0.5
    async with working_queue(workspace, target.url + "/", QueuePolicy(max_attempts=3)) as (recorder, worker):
        await recorder.record(make_delivery(body=b"slow"), is_durable=False, send_at_once=True)
        await await_until(lambda: len(target.received) == 1, what="the send under way")
        assert await workspace.writer.submit(lambda store: store.queue_cancel()) == 1
        await await_until(lambda: workspace.store.attempts(1) != [], what="the attempt noted")
        assert workspace.store.queue_counts() == {"cancelled": 1}
