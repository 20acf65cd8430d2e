"""The one capture path: every intake (HTTP, relay, import) records through the Recorder, so a
delivery gets the same provider, event, verdict, routing and announcement whichever way it came."""

import asyncio
import json

import httpx
import pytest

from hookinspect.formats.export import export
from hookinspect.formats.samples import build_sample_request, find_sample
from hookinspect.intake.importing import import_deliveries, parse_import
from hookinspect.intake.receiver import ForwardSettings, ReceiverSettings, create_app, start_server
from hookinspect.intake.subscription import RelaySubscriber
from hookinspect.model import RECORDED_KIND, Attempt, Delivery, ExportItem, SentRequest
from hookinspect.recorder import Recorder
from hookinspect.relay.server import RelaySettings, create_relay_app
from hookinspect.relay.storage import SqliteRelayStorage
from hookinspect.send.forward import Forwarder
from hookinspect.signing.registry import Secrets, annotate_delivery
from hookinspect.workspace import StoreChange, Workspace
from tests.factories import await_until

SECRET = "whsec_recorder"
TARGET = "http://127.0.0.1:9/backend"


def signed_sample(url: str):
    """A Stripe payment_intent.succeeded, signed now, as the sender would post it to `url`."""
    return build_sample_request(find_sample("stripe/payment_intent.succeeded"), url, SECRET)


def recorder_for(workspace: Workspace) -> Recorder:
    secrets = Secrets()
    secrets.add("stripe", SECRET)
    return Recorder(workspace, annotate=lambda d: annotate_delivery(d, secrets), route=lambda _d: [TARGET],
                    queue_forwards=True)


def assert_recorded_alike(workspace: Workspace, changes: list[StoreChange], source: str) -> Delivery:
    [delivery] = [workspace.store.get(seq) for seq in workspace.store.seqs()]
    assert delivery.source == source
    assert (delivery.provider, delivery.event_type) == ("stripe", "payment_intent.succeeded")
    assert delivery.verdict == "valid"
    assert workspace.store.queue_counts() == {"pending": 1}  # routed and queued with the delivery
    [head] = workspace.store.queue_items()
    assert (head.delivery_seq, head.target) == (delivery.seq, TARGET)
    kinds = [(change.kind, change.seq) for change in changes]
    assert kinds == [("deliveries", delivery.seq), ("queued", delivery.seq)]
    assert changes[0].delivery.id == delivery.id
    return delivery


async def test_an_http_capture_is_recorded_through_the_recorder(workspace):
    changes: list[StoreChange] = []
    workspace.changes.subscribe(changes.append)
    same = recorder_for(workspace)
    # listen --ack as a --workers sibling: it queues, and another process works the queue.
    forward = ForwardSettings(forwarder=Forwarder(), route=same.route, ack=True, works_queue=False)
    settings = ReceiverSettings(inspect=same.annotate, forward=forward)
    runner, urls = await start_server(create_app(workspace, settings), "127.0.0.1", 0)
    try:
        request = signed_sample(urls[0] + "/stripe")
        async with httpx.AsyncClient() as client:
            answer = await client.post(request.url, content=request.body, headers=request.headers.pairs())
        assert answer.status_code == 200
    finally:
        await runner.cleanup()
    assert_recorded_alike(workspace, changes, "listen")


async def test_a_relay_delivery_is_recorded_through_the_recorder(workspace, tmp_path):
    storage = SqliteRelayStorage(tmp_path / "relay")
    relay_runner, relay_urls = await start_server(create_relay_app(storage, RelaySettings()), "127.0.0.1", 0)
    subscription = None
    try:
        async with httpx.AsyncClient() as client:
            channel = (await client.post(relay_urls[0] + "/api/channels")).json()
            changes: list[StoreChange] = []
            workspace.changes.subscribe(changes.append)
            subscriber = RelaySubscriber(channel["url"], recorder_for(workspace), token=channel["token"])
            subscription = asyncio.create_task(subscriber.run())
            request = signed_sample(channel["url"] + "/stripe")
            answer = await client.post(request.url, content=request.body, headers=request.headers.pairs())
            assert answer.status_code == 200
            await await_until(lambda: len(changes) >= 2)
    finally:
        if subscription is not None:
            subscription.cancel()
            await asyncio.gather(subscription, return_exceptions=True)
        await relay_runner.cleanup()
        storage.close()
    delivery = assert_recorded_alike(workspace, changes, "relay")
    assert delivery.origin == f"{channel['url']}#1"


async def test_an_import_is_recorded_through_the_recorder(workspace):
    request = signed_sample("http://hooks.example/stripe")
    original = Delivery(method="POST", path="/stripe", headers=request.headers, body=request.body)
    text, _ = export([ExportItem(original, [])], "json", redact_secrets=False)
    changes: list[StoreChange] = []
    workspace.changes.subscribe(changes.append)
    added = await import_deliveries(recorder_for(workspace), parse_import(text.encode()))
    assert added == (1, 0)
    assert_recorded_alike(workspace, changes, "import")


async def test_a_failing_subscriber_does_not_fail_the_capture(workspace):
    def broken(_change):
        raise RuntimeError("a subscriber with a bug")

    workspace.changes.subscribe(broken)
    recorded = await Recorder(workspace).record(Delivery(method="POST", path="/x", body=b"{}"))
    assert recorded.delivery.seq == 1 and workspace.store.count() == 1


async def test_a_stranger_s_timestamp_of_5000_digits_is_captured_with_a_verdict(workspace):
    same = recorder_for(workspace)
    runner, urls = await start_server(create_app(workspace, ReceiverSettings(inspect=same.annotate)), "127.0.0.1", 0)
    try:
        request = signed_sample(urls[0] + "/stripe")
        headers = request.headers.with_set("Stripe-Signature", "t=" + "9" * 5000 + ",v1=abc")  # Python reads 4,300
        async with httpx.AsyncClient() as client:
            answer = await client.post(request.url, content=request.body, headers=headers.pairs())
        assert answer.status_code == 200  # it was a 500, and nothing was stored
    finally:
        await runner.cleanup()
    [delivery] = [workspace.store.get(seq) for seq in workspace.store.seqs()]
    assert delivery.body == request.body and delivery.verdict == "malformed"


async def test_a_check_that_fails_costs_no_capture_and_says_so_on_the_delivery(workspace):
    def flawed(_delivery):
        raise RuntimeError("a flaw\nin a check")

    recorded = await Recorder(workspace, annotate=flawed).record(Delivery(method="POST", path="/x", body=b"{}"))
    stored = workspace.store.get(recorded.delivery.seq)
    assert stored.verdict is None
    assert stored.verdict_reason == "not checked: the check failed (RuntimeError: a flaw in a check)"


@pytest.mark.parametrize("size", [10, 300 * 1024])
async def test_small_and_big_bodies_are_annotated(workspace, size):
    request = signed_sample("http://hooks.example/stripe")
    body = json.dumps({**json.loads(request.body), "pad": "x" * size}).encode()
    recorded = await Recorder(workspace, annotate=lambda d: annotate_delivery(d, Secrets())).record(
        Delivery(method="POST", path="/stripe", headers=request.headers, body=body))
    assert recorded.delivery.event_type == "payment_intent.succeeded" and not recorded.is_queued


async def test_a_batch_from_a_thread_is_recorded_alike_in_one_transaction(workspace):
    """The record middleware's writer hands over many deliveries at once: each gets the same
    annotation, routing, queue and announcement as one recorded alone, and all of them are
    stored or none is."""
    request = signed_sample("http://hooks.example/stripe")
    changes: list[StoreChange] = []
    workspace.changes.subscribe(changes.append)
    same = recorder_for(workspace)
    batch = [(Delivery(method="POST", path="/stripe", headers=request.headers, body=request.body, source="record"),
              (Attempt(delivery_seq=0, kind=RECORDED_KIND, target_url="http://staging.example/stripe",
                       request=SentRequest(method="POST", url="http://staging.example/stripe")),))
             for _ in range(3)]
    await asyncio.to_thread(same.record_batch, batch)
    stored = [workspace.store.get(seq) for seq in workspace.store.seqs()]
    assert len(stored) == 3 and {d.verdict for d in stored} == {"valid"}
    assert [[a.kind for a in workspace.store.attempts(d.seq)] for d in stored] == [[RECORDED_KIND]] * 3
    assert workspace.store.queue_counts() == {"pending": 3}
    assert [change.kind for change in changes] == ["deliveries", "queued"] * 3

    clash = Delivery(method="POST", path="/stripe", body=b"{}", id=stored[0].id)  # stored already: the batch fails
    with pytest.raises(Exception):  # noqa: B017, PT011 - SQLite's constraint error, whatever its class
        await asyncio.to_thread(same.record_batch, [(Delivery(method="POST", path="/fine", body=b"{}"), ()), (clash, ())])
    assert workspace.store.count() == 3  # not the first of that batch either
