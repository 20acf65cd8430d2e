import asyncio
import json
import os
import signal
import sys
import time

import httpx
from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.store.sqlite import Store
from tests.factories import RecordingTarget, free_port, make_delivery, start_listen, stop_process

runner = CliRunner()


def seed(store_path, *deliveries):
    with Store(store_path) as store:
        for delivery in deliveries:
            store.insert_delivery(delivery)


async def invoke(*args):
    # replay runs its own event loop, so it runs in a thread beside the test's loop
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def test_replay_sends_byte_exact_and_records_an_attempt(store_path, target):
    seed(store_path, make_delivery(b'{"id":"evt_1"}'))
    result = await invoke("replay", "1", "--to", target.url + "/hooks", "--store", str(store_path), "--json")
    assert result.exit_code == 0, result.output
    assert target.received[0]["body"] == b'{"id":"evt_1"}' and target.received[0]["path_qs"] == "/hooks"
    attempts = json.loads(result.stdout)
    assert attempts[0]["response"]["status"] == 200
    with Store(store_path) as store:
        assert store.attempts(1)[0].kind == "replay"


async def test_replay_edits_do_not_change_the_stored_delivery(store_path, target, tmp_path):
    seed(store_path, make_delivery(b'{"a":1}', headers=[("User-Agent", "Stripe/1.0")]))
    body = tmp_path / "b.json"
    body.write_bytes(b'{"a":2}')
    result = await invoke("replay", "1", "--to", target.url, "--set-header", "x-debug: 1", "--drop-header", "user-agent",
                          "--body-file", str(body), "--store", str(store_path))
    assert result.exit_code == 0
    sent = target.received[0]
    assert sent["body"] == b'{"a":2}' and (b"x-debug", b"1") in sent["headers"]
    assert all(k.lower() != b"user-agent" for k, _ in sent["headers"])
    with Store(store_path) as store:
        assert store.get(1).body == b'{"a":1}' and store.get(1).headers.get("user-agent") == "Stripe/1.0"
        assert store.attempts(1)[0].request.body == b'{"a":2}'


async def test_replay_edit_uses_the_editor(store_path, target, tmp_path):
    seed(store_path, make_delivery(b'{"a":1}'))
    editor = tmp_path / "editor.py"
    editor.write_text("import sys; open(sys.argv[1], 'w').write('{\"edited\": true}')")
    os.environ["EDITOR"] = f"{sys.executable} {editor}"
    try:
        result = await invoke("replay", "1", "--edit", "--to", target.url, "--store", str(store_path))
    finally:
        del os.environ["EDITOR"]
    assert result.exit_code == 0 and target.received[0]["body"] == b'{"edited": true}'


async def test_replay_range_concurrently_and_failed_ones_again(store_path, target):
    seed(store_path, *(make_delivery(path=f"/d{i}") for i in range(6)))
    target.status = 500
    result = await invoke("replay", "2-5", "--to", target.url + "/", "-c", "4", "--store", str(store_path))
    assert result.exit_code == 1 and "4 of 4 sends failed" in result.stderr
    target.status = 200
    again = await invoke("replay", "--failed", "--store", str(store_path), "--json")
    assert again.exit_code == 0
    assert sorted(a["delivery_seq"] for a in json.loads(again.stdout)) == [2, 3, 4, 5]
    assert len(target.received) == 8


async def test_replay_to_a_target_that_is_down_records_the_error_and_exits_1(store_path):
    seed(store_path, make_delivery())
    result = await invoke("replay", "1", "--to", "http://127.0.0.1:1/", "--store", str(store_path))
    assert result.exit_code == 1 and "connect" in result.stdout
    with Store(store_path) as store:
        assert store.attempts(1)[0].error_kind == "connect"


async def test_replay_errors_are_one_line(store_path):
    seed(store_path, make_delivery())
    bad_url = await invoke("replay", "1", "--to", "nope", "--store", str(store_path))
    assert bad_url.exit_code == 2 and "not an http(s) URL" in bad_url.stderr
    missing = await invoke("replay", "77", "--to", "http://127.0.0.1:1/", "--store", str(store_path))
    assert missing.exit_code == 2 and "no delivery #77" in missing.stderr
    no_target = await invoke("replay", "1", "--store", str(store_path))
    assert no_target.exit_code == 2 and "never sent anywhere" in no_target.stderr


async def test_listen_proxy_mode_returns_the_targets_answer(tmp_path, target):
    target.status, target.body = 201, b'{"from":"target"}'
    proc, url = await asyncio.to_thread(start_listen, tmp_path / "s.db", "--forward-to", target.url + "/in")
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.post(url + "/stripe?x=1", content=b'{"n":1}')
    finally:
        out, _ = await asyncio.to_thread(stop_process, proc)
    assert answer.status_code == 201 and answer.json() == {"from": "target"}
    assert target.received[0]["path_qs"] == "/in?x=1"
    assert "→" in out and "201" in out


async def test_listen_proxy_mode_answers_502_when_the_target_is_down_and_keeps_the_delivery(tmp_path):
    proc, url = await asyncio.to_thread(start_listen, tmp_path / "s.db", "--forward-to", "http://127.0.0.1:1/")
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.post(url + "/x", content=b"{}")
    finally:
        await asyncio.to_thread(stop_process, proc)
    assert answer.status_code == 502 and "delivery #1 is stored" in answer.text
    with Store(tmp_path / "s.db") as store:
        assert store.count() == 1 and store.attempts(1)[0].error_kind == "connect"


async def test_ack_mode_answers_at_once_and_retries_until_the_target_comes_back(tmp_path):
    port = free_port()
    proc, url = await asyncio.to_thread(start_listen, tmp_path / "s.db", "--forward-to", f"http://127.0.0.1:{port}/in", "--ack")
    target = RecordingTarget()
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.post(url + "/x", content=b'{"n":1}')
        assert answer.status_code == 200  # acknowledged although the target is down
        await asyncio.sleep(0.5)  # the first try (immediate) fails; the next comes 5 s later
        await target.start(port)
        deadline = time.monotonic() + 15
        while not target.received and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(stop_process, proc)
        await target.stop()
    assert [r["body"] for r in target.received] == [b'{"n":1}']
    with Store(tmp_path / "s.db") as store:
        outcomes = [a.outcome for a in store.attempts(1)]
    assert outcomes == ["connect", "200"]


async def test_ack_queue_survives_kill_9_and_delivers_in_order_after_restart(tmp_path):
    store_path = tmp_path / "s.db"
    port = free_port()
    # The target is named in the config file this time, through a route.
    (tmp_path / "hookinspect.toml").write_text(f'[[route]]\npath = "/q*"\nto = "http://127.0.0.1:{port}/in"\n')
    proc, url = await asyncio.to_thread(start_listen, store_path, "--ack", cwd=tmp_path)
    async with httpx.AsyncClient() as client:
        for i in range(3):
            assert (await client.post(url + f"/q{i}", content=f'{{"i":{i}}}'.encode())).status_code == 200
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    target = await RecordingTarget().start(port)
    # Restart: the head item waits for its 5 s backoff, then the queue drains in order.
    proc, url = await asyncio.to_thread(start_listen, store_path, "--ack", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while len(target.received) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(stop_process, proc)
        await target.stop()
    assert [r["body"] for r in target.received] == [b'{"i":0}', b'{"i":1}', b'{"i":2}']
    with Store(store_path) as store:
        assert store.queue_counts() == {"done": 3}
