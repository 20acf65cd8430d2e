"""The relay subscription (intake/subscription.py), end to end with real processes: relay,
`listen --source`, senders, on loopback."""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from hookinspect.intake.subscription import REENCODED_NOTE, delivery_from_event
from hookinspect.store.sqlite import Store
from tests.factories import (
    RecordingTarget,
    await_until,
    free_port,
    hookinspect_cmd,
    read_until,
    stop_process,
)
from tests.tunnel import (  # noqa: F401 - stop_leftover_processes is the fixture
    STARTED,
    new_channel,
    send_many,
    start_listen_tracked,
    start_relay,
    stop_leftover_processes,
    stored_bodies,
    wait_for_count,
)


def test_offline_client_gets_exactly_what_it_missed_in_order(tmp_path):
    relay, relay_url = start_relay(tmp_path / "relay")
    store = tmp_path / "laptop.db"
    try:
        channel = new_channel(relay_url)
        listen, _ = start_listen_tracked(store, "--source", channel["url"], "--token", channel["token"])
        send_many(channel["url"] + "/hook", [b'{"before":1}'])
        wait_for_count(store, 1, proc=listen)
        stop_process(listen)  # the laptop goes offline
        bodies = [json.dumps({"n": i}).encode() for i in range(100)]
        send_many(channel["url"] + "/hook", bodies)
        listen, _ = start_listen_tracked(store, "--source", channel["url"], "--token", channel["token"])
        wait_for_count(store, 101)
        out, _ = stop_process(listen)  # anything sent twice would be stored by now: the stop drains
    finally:
        stop_process(relay)
    assert stored_bodies(store) == [b'{"before":1}', *bodies]  # all, in order, none twice
    assert "caught up 100 missed deliveries" in out
    assert "relay connected: " + channel["url"] in out and "relay relay" not in out  # the live line names it once


def test_relay_restart_with_pending_deliveries_loses_none(tmp_path):
    port = free_port()
    relay, relay_url = start_relay(tmp_path / "relay", port)
    channel = new_channel(relay_url)
    send_many(channel["url"], [b'{"a":1}', b'{"a":2}'])
    relay.send_signal(signal.SIGKILL)
    stop_process(relay)  # reaps it and closes its pipes
    relay, relay_url = start_relay(tmp_path / "relay", port)
    store = tmp_path / "laptop.db"
    token_file = tmp_path / "token"
    token_file.write_text(channel["token"] + "\n")  # off the command line, out of `ps`
    try:
        listen, _ = start_listen_tracked(store, "--source", channel["url"], "--token-file", str(token_file), "-q")
        assert channel["token"] not in " ".join(listen.args)
        wait_for_count(store, 2)
        stop_process(listen)
    finally:
        stop_process(relay)
    assert stored_bodies(store) == [b'{"a":1}', b'{"a":2}']


def test_kill_9_of_the_client_mid_stream_leaves_no_duplicates(tmp_path):
    relay, relay_url = start_relay(tmp_path / "relay")
    store = tmp_path / "laptop.db"
    try:
        channel = new_channel(relay_url)
        bodies = [json.dumps({"n": i, "pad": "x" * 500}).encode() for i in range(400)]
        send_many(channel["url"], bodies)
        listen, _ = start_listen_tracked(store, "--source", channel["url"], "--token", channel["token"], "-q")
        wait_for_count(store, 50)
        listen.send_signal(signal.SIGKILL)
        stop_process(listen)  # reaps it and closes its pipes
        listen, _ = start_listen_tracked(store, "--source", channel["url"], "--token", channel["token"], "-q")
        wait_for_count(store, 400)
        stop_process(listen)
    finally:
        stop_process(relay)
    assert stored_bodies(store) == bodies


def test_a_stripe_signature_made_by_the_stripe_library_verifies_at_the_laptop(tmp_path):
    import stripe

    relay, relay_url = start_relay(tmp_path / "relay")
    store = tmp_path / "laptop.db"
    try:
        channel = new_channel(relay_url)
        listen, _ = start_listen_tracked(store, "--source", channel["url"], "--token", channel["token"], "--secret", "stripe=whsec_r", "-q")
        payload = '{\n  "id": "evt_1",  "type": "invoice.paid"\n}'  # odd spacing: re-encoding would break it
        now = int(time.time())
        signature = stripe.WebhookSignature._compute_signature(f"{now}.{payload}", "whsec_r")
        httpx.post(channel["url"] + "/stripe", content=payload.encode(),
                   headers={"Content-Type": "application/json", "Stripe-Signature": f"t={now},v1={signature}"})
        wait_for_count(store, 1)
        stop_process(listen)
    finally:
        stop_process(relay)
    with Store(store) as opened:
        delivery = opened.get(1)
    assert delivery.body == payload.encode() and delivery.verdict == "valid" and delivery.provider == "stripe"
    assert stripe.Webhook.construct_event(delivery.body, delivery.headers.get("stripe-signature"), "whsec_r")
    assert delivery.origin.endswith("#1") and delivery.path == "/stripe"


async def test_source_with_forward_to_delivers_to_the_backend(tmp_path):
    relay, relay_url = await asyncio.to_thread(start_relay, tmp_path / "relay")
    target = await RecordingTarget().start()
    store = tmp_path / "laptop.db"
    try:
        channel = await asyncio.to_thread(new_channel, relay_url)
        listen, _ = await asyncio.to_thread(start_listen_tracked, store, "--source", channel["url"], "--token", channel["token"],
                                            "--forward-to", target.url + "/", "-q")
        async with httpx.AsyncClient() as client:
            await client.post(channel["url"] + "/hooks/x", content=b'{"fwd":1}')
        await await_until(lambda: target.received, what="the relayed delivery forwarded")
        await asyncio.to_thread(stop_process, listen)
    finally:
        await asyncio.to_thread(stop_process, relay)
        await target.stop()
    assert target.received[0]["body"] == b'{"fwd":1}' and target.received[0]["path_qs"] == "/hooks/x"


def test_a_plain_smee_event_is_rebuilt_and_marked():
    data = {"content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": "sha256=ab",
            "body": {"ref": "main"}, "query": {"a": "1"}, "timestamp": 1_764_345_600_000}
    delivery = delivery_from_event(data, "12", "https://smee.io/abc")
    assert delivery.body == b'{"ref":"main"}' and delivery.query == "a=1"
    assert delivery.headers.get("x-github-event") == "push" and delivery.note == REENCODED_NOTE
    assert delivery.origin == "https://smee.io/abc#12" and delivery.received_us == 1_764_345_600_000_000


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed, so smee-client cannot be tried")
async def test_smee_client_forwards_from_our_relay(tmp_path):
    workdir = Path(tempfile.mkdtemp(prefix="smee-client-"))
    install = await asyncio.to_thread(subprocess.run, ["npm", "install", "--silent", "--no-audit", "--no-fund", "smee-client@5"],
                                      cwd=workdir, capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"npm could not install smee-client: {install.stderr.strip()[:200]}")
    relay, relay_url = await asyncio.to_thread(start_relay, tmp_path / "relay")
    target = await RecordingTarget().start()
    smee = None
    try:
        async with httpx.AsyncClient() as client:
            channel_url = (await client.head(relay_url + "/new")).headers["location"]
            smee = subprocess.Popen([str(workdir / "node_modules" / ".bin" / "smee"), "--url", channel_url,
                                     "--target", target.url + "/from-smee"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NODE_NO_WARNINGS": "1"})
            await asyncio.to_thread(read_until, smee.stdout, "Connected", 60)
            await client.post(channel_url, json={"hello": "smee"})
        await await_until(lambda: target.received, what="smee-client forwarding the delivery")
    finally:
        if smee is not None:
            smee.terminate()
            smee.wait(10)
        await asyncio.to_thread(stop_process, relay)
        await target.stop()
    assert target.received, "smee-client delivered nothing"
    assert json.loads(target.received[0]["body"]) == {"hello": "smee"}
    assert target.received[0]["path_qs"] == "/from-smee"


def test_channel_new_suggests_the_token_in_the_environment_not_on_the_command_line(tmp_path):
    relay, relay_url = start_relay(tmp_path / "relay")
    try:
        result = subprocess.run(hookinspect_cmd("channel", "new", "--relay", relay_url), capture_output=True, text=True,
                                check=True, timeout=30)
    finally:
        stop_process(relay)
    suggestion = [line for line in result.stderr.splitlines() if "hookinspect listen" in line]
    assert suggestion and "HOOKINSPECT_TOKEN=" in suggestion[0] and "--token" not in suggestion[0]


async def test_channel_commands_aimed_at_something_else_than_a_relay_are_one_line_each(target):
    from typer.testing import CliRunner

    from hookinspect.cli.app import app

    # A `listen`, or any server that answers 200 with JSON of its own: the wrong port, say.
    commands = (["channel", "new", "--relay", target.url], ["channel", "claims", f"{target.url}/abc"],
                ["channel", "release", f"{target.url}/abc", "--subscriber", "ana"])
    for command in commands:
        result = await asyncio.to_thread(CliRunner().invoke, app, command)
        assert result.exit_code == 2 and "Traceback" not in result.output, (command, result.output)
        assert "not as a hookinspect relay does" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    nobody = f"http://127.0.0.1:{free_port()}"
    result = await asyncio.to_thread(CliRunner().invoke, app, ["channel", "new", "--relay", nobody])
    assert result.exit_code == 4
    assert result.stderr.strip() == f"error: cannot reach the relay at {nobody}: Connection refused"


async def test_an_event_over_the_laptops_body_limit_is_one_line_and_the_next_ones_arrive(workspace, tmp_path):
    from hookinspect.intake.subscription import RelaySubscriber
    from hookinspect.recorder import Recorder

    relay, relay_url = await asyncio.to_thread(start_relay, tmp_path / "relay")
    said: list[str] = []
    subscription = None
    try:
        channel = await asyncio.to_thread(new_channel, relay_url)
        subscriber = RelaySubscriber(channel["url"], Recorder(workspace), token=channel["token"], on_state=said.append,
                                     max_body=1000)
        subscription = asyncio.create_task(subscriber.run())
        await await_until(lambda: any(line.startswith("caught up") for line in said))
        async with httpx.AsyncClient() as client:
            for body in (b"small 1", b"x" * 2_000_000, b"small 2"):
                assert (await client.post(channel["url"], content=body)).status_code == 200
        await await_until(lambda: workspace.store.count() == 2, what="the two small deliveries")
    finally:
        if subscription is not None:
            subscription.cancel()
            await asyncio.gather(subscription, return_exceptions=True)
        await asyncio.to_thread(stop_process, relay)
    assert [workspace.store.get(seq).body for seq in workspace.store.seqs()] == [b"small 1", b"small 2"]
    [skipped] = [line for line in said if "skipped" in line]
    assert skipped.startswith("event 2 is over") and "listen --max-body" in skipped


async def test_a_full_disk_at_the_laptop_lets_the_stream_go_and_every_event_comes_once_there_is_room(
        workspace, tmp_path, monkeypatch):
    import hookinspect.intake.subscription as client_module
    from hookinspect.intake.subscription import RelaySubscriber
    from hookinspect.recorder import Recorder

    monkeypatch.setattr(client_module, "BACKOFF", (0.05, 0.1, 0.2))
    relay, relay_url = await asyncio.to_thread(start_relay, tmp_path / "relay")
    said: list[str] = []
    subscription = None
    try:
        channel = await asyncio.to_thread(new_channel, relay_url)
        subscriber = RelaySubscriber(channel["url"], Recorder(workspace), token=channel["token"], on_state=said.append)
        subscription = asyncio.create_task(subscriber.run())
        await await_until(lambda: any(line.startswith("caught up") for line in said))
        pages = await workspace.writer.submit(lambda store: store.execute("PRAGMA page_count").fetchone()[0])
        await workspace.writer.submit(lambda store: store.execute(f"PRAGMA max_page_count = {pages}"))  # as full as a disk gets
        bodies = [b"%d" % n + b"x" * 50_000 for n in range(3)]
        async with httpx.AsyncClient() as client:
            for body in bodies:
                assert (await client.post(channel["url"], content=body)).status_code == 200  # the relay keeps them
        await await_until(lambda: any("storing failed" in line and "is full" in line for line in said), timeout=30,
                          what="the full disk said")
        assert not subscription.done()  # it used to end here for good, at the next ping
        await workspace.writer.submit(lambda store: store.execute("PRAGMA max_page_count = 1073741823"))  # room again
        await await_until(lambda: workspace.store.count() == 3, timeout=30, what="every event once there is room")
    finally:
        if subscription is not None:
            subscription.cancel()
            await asyncio.gather(subscription, return_exceptions=True)
        await asyncio.to_thread(stop_process, relay)
    assert [workspace.store.get(seq).body for seq in workspace.store.seqs()] == bodies


@contextlib.asynccontextmanager
async def subscribed_to_a_fake_relay(subscribe, workspace, said, done):
    """`listen --source` of a loopback server that answers every subscription with `subscribe`
    (a relay not of ours); `done` is set when the block ends, to release its streams."""
    from aiohttp import web

    from hookinspect.intake.subscription import RelaySubscriber
    from hookinspect.recorder import Recorder

    app = web.Application()
    app.router.add_get("/{channel}", subscribe)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/channel"  # type: ignore[union-attr]
    subscription = asyncio.create_task(RelaySubscriber(url, Recorder(workspace), on_state=said.append).run())
    try:
        yield
    finally:
        done.set()
        subscription.cancel()
        await asyncio.gather(subscription, return_exceptions=True)
        await runner.cleanup()


async def test_events_that_are_not_deliveries_are_skipped_in_one_line_and_the_stream_goes_on(workspace):
    import base64

    from aiohttp import web

    from hookinspect.values import now_us

    good = {"method": "POST", "path": "/p", "query": "", "headers": [["A", "1"]],
            "body_base64": base64.b64encode(b"ok").decode(), "received_us": 10**30}  # a time no store holds
    events = [{"hookinspect": {"method": "POST"}}, {"hookinspect": {**good, "body_base64": "%%"}},
              {"hookinspect": good}]
    done = asyncio.Event()

    async def odd_relay(request):  # not ours, nor smee: what a stranger's "relay" may send
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: ready\ndata: {}\n\n")
        for number, data in enumerate(events, start=1):
            await response.write(f"id: {number}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write(b"event: caught-up\ndata: {}\n\n")
        await done.wait()
        return response

    said: list[str] = []
    async with subscribed_to_a_fake_relay(odd_relay, workspace, said, done):
        await await_until(lambda: workspace.store.count() == 1 and any("caught up" in line for line in said))
    assert [line for line in said if "skipped" in line] == [
        "sent an event 1 that is not a delivery; skipped", "sent an event 2 that is not a delivery; skipped"]
    [stored] = [workspace.store.get(seq) for seq in workspace.store.seqs()]
    assert stored.body == b"ok" and abs(stored.received_us - now_us()) < 60_000_000


async def test_a_stream_that_falls_silent_is_dropped_and_subscribed_again(workspace, monkeypatch):
    from aiohttp import web

    import hookinspect.intake.subscription as client_module

    monkeypatch.setattr(client_module, "SILENCE_SECONDS", 0.5)
    monkeypatch.setattr(client_module, "BACKOFF", (0.05,))
    subscriptions = []
    done = asyncio.Event()

    async def silent(request):  # says it is ready, then nothing: a connection a middlebox let die
        subscriptions.append(request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: ready\ndata: {}\n\n")
        await done.wait()
        return response

    said: list[str] = []
    async with subscribed_to_a_fake_relay(silent, workspace, said, done):
        await await_until(lambda: len(subscriptions) >= 2, what="a second subscription")
    assert any("nothing heard for 0.5 s" in line for line in said), said


async def test_a_relay_that_is_not_there_is_one_plain_line(workspace, monkeypatch):
    import hookinspect.intake.subscription as client_module
    from hookinspect.intake.subscription import RelaySubscriber
    from hookinspect.recorder import Recorder

    monkeypatch.setattr(client_module, "BACKOFF", (30,))
    port = free_port()
    said: list[str] = []
    subscription = asyncio.create_task(RelaySubscriber(f"http://127.0.0.1:{port}/gone", Recorder(workspace),
                                                       on_state=said.append).run())
    try:
        await await_until(lambda: said, what="a line about the relay")
    finally:
        subscription.cancel()
        await asyncio.gather(subscription, return_exceptions=True)
    assert said[0].endswith(f"(cannot connect to 127.0.0.1:{port} (Connection refused)); reconnecting in 30 s"), said
