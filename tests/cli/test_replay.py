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
from tests.factories import (
    RecordingTarget,
    await_until,
    free_port,
    make_delivery,
    seed,
    start_listen,
    stop_process,
    store_count,
)

runner = CliRunner()


async def wait_for_attempts(store_path, count, timeout=15.0):
    """Until the store holds `count` attempts (of any delivery), or fail saying so."""
    await await_until(lambda: store_count(store_path, "attempts") >= count, timeout, f"{count} attempts recorded")


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
        await wait_for_attempts(tmp_path / "s.db", 1)  # the first try (immediate) fails; a probe follows
        await target.start(port)
        await await_until(lambda: target.received, what="the queued delivery reaching the target")
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
    proc, url = await asyncio.to_thread(start_listen, store_path, "--ack", "--ordered", cwd=tmp_path)
    async with httpx.AsyncClient() as client:
        for i in range(3):
            assert (await client.post(url + f"/q{i}", content=f'{{"i":{i}}}'.encode())).status_code == 200
    await wait_for_attempts(store_path, 1)  # the head was tried: the target is down
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    target = await RecordingTarget().start(port)
    # Restart: the head item waits for its next probe, then the queue drains in order.
    proc, url = await asyncio.to_thread(start_listen, store_path, "--ack", "--ordered", cwd=tmp_path)
    try:
        await await_until(lambda: len(target.received) >= 3, timeout=20, what="the three queued deliveries")
    finally:
        await asyncio.to_thread(stop_process, proc)
        await target.stop()
    assert [r["body"] for r in target.received] == [b'{"i":0}', b'{"i":1}', b'{"i":2}']
    with Store(store_path) as store:
        assert store.queue_counts() == {"done": 3}


def _stale_delivery(sample_name, secret, minutes=10):
    from hookinspect.formats.samples import build_sample_request, find_sample

    request = build_sample_request(find_sample(sample_name), "http://127.0.0.1:8787/", secret, now=time.time() - minutes * 60)
    return make_delivery(request.body, path=request.url.split("8787", 1)[1], content_type=None, headers=request.headers.pairs())


async def test_replay_of_an_old_capture_passes_the_official_verifiers_after_resigning(store_path, target):
    import base64

    import stripe
    from slack_sdk.signature import SignatureVerifier
    from standardwebhooks.webhooks import Webhook

    standard_secret = "whsec_" + base64.b64encode(b"q" * 24).decode()
    seed(store_path, _stale_delivery("stripe/payment_intent.succeeded", "whsec_s"),
         _stale_delivery("slack/app_mention", "slack-s"), _stale_delivery("standard/invoice.paid", standard_secret))
    result = await invoke("replay", "1-3", "--to", target.url + "/", "--secret", "stripe=whsec_s", "--secret", "slack=slack-s",
                          "--secret", f"standard={standard_secret}", "--store", str(store_path))
    assert result.exit_code == 0, result.output
    by_path = {r["path_qs"]: r for r in target.received}

    def header(received, name):
        return next(v.decode() for k, v in received["headers"] if k.decode().lower() == name)

    got = by_path["/stripe/webhook"]
    assert stripe.Webhook.construct_event(got["body"], header(got, "stripe-signature"), "whsec_s")
    got = by_path["/slack/events"]
    assert SignatureVerifier("slack-s").is_valid(got["body"], header(got, "x-slack-request-timestamp"),
                                                 header(got, "x-slack-signature"))
    got = by_path["/hooks/billing"]
    Webhook(standard_secret).verify(got["body"], {k.decode(): v.decode() for k, v in got["headers"]})
    with Store(store_path) as store:  # the stored delivery keeps its old signature; the attempt has the new one
        assert store.get(1).headers.get("stripe-signature") != store.attempts(1)[0].request.headers.get("stripe-signature")


async def test_no_resign_sends_the_stored_signature(store_path, target):
    import stripe

    seed(store_path, _stale_delivery("stripe/payment_intent.succeeded", "whsec_s"))
    result = await invoke("replay", "1", "--to", target.url + "/", "--secret", "stripe=whsec_s", "--no-resign",
                          "--store", str(store_path))
    assert result.exit_code == 0
    got = target.received[0]
    signature = next(v.decode() for k, v in got["headers"] if k.lower() == b"stripe-signature")
    with Store(store_path) as store:
        assert signature == store.get(1).headers.get("stripe-signature")
    try:
        stripe.Webhook.construct_event(got["body"], signature, "whsec_s")
    except stripe.SignatureVerificationError as exc:
        assert "timestamp outside the tolerance zone" in str(exc).lower()
    else:
        raise AssertionError("a 10-minute-old signature should be rejected")


async def test_twilio_is_resigned_for_the_new_target_url(store_path, target):
    from twilio.request_validator import RequestValidator

    seed(store_path, _stale_delivery("twilio/message.incoming", "tok"))
    result = await invoke("replay", "1", "--to", target.url + "/sms-in", "--secret", "twilio=tok", "--store", str(store_path))
    assert result.exit_code == 0
    got = target.received[0]
    from urllib.parse import parse_qsl

    signature = next(v.decode() for k, v in got["headers"] if k.lower() == b"x-twilio-signature")
    assert RequestValidator("tok").validate(target.url + "/sms-in", dict(parse_qsl(got["body"].decode(), keep_blank_values=True)), signature)


async def test_listen_records_verdicts_and_ls_filters_by_them(tmp_path):
    store_path = tmp_path / "s.db"
    proc, url = await asyncio.to_thread(start_listen, store_path, "--secret", "stripe=whsec_good")
    try:
        for secret in ("whsec_good", "whsec_bad"):
            result = await invoke("send", "stripe/payment_intent.succeeded", "--to", url + "/", "--secret", secret)
            assert result.exit_code == 0, result.output
    finally:
        out, _ = await asyncio.to_thread(stop_process, proc)
    assert "valid" in out and "invalid (body differs" in out
    rows = json.loads((await invoke("ls", "--json", "--verdict", "invalid", "--store", str(store_path))).stdout)
    assert [(r["seq"], r["provider"], r["event_type"]) for r in rows] == [(2, "stripe", "payment_intent.succeeded")]
    shown = json.loads((await invoke("show", "2", "--json", "--store", str(store_path))).stdout)
    assert shown["verdict"] == "invalid" and "body differs" in shown["verdict_reason"]
    checked = await invoke("verify", "2", "--secret", "stripe=whsec_bad", "--store", str(store_path))
    assert checked.exit_code == 0 and "valid" in checked.stdout
    assert "whsec_bad" not in checked.output  # secrets are never printed


async def test_replay_insecure_reaches_a_self_signed_https_target(store_path, tls_server):
    seed(store_path, make_delivery())
    strict = await invoke("replay", "1", "--to", tls_server, "--store", str(store_path))
    loose = await invoke("replay", "1", "--to", tls_server, "-k", "--store", str(store_path))
    assert strict.exit_code == 1 and "tls" in strict.stdout
    assert loose.exit_code == 0


def count_connections(monkeypatch, store_path) -> list[str]:
    """Every SQLite connection opened to the store from now on (watched, not replaced)."""
    import hookinspect.store.schema as schema

    opened: list[str] = []
    connect = schema.sqlite3.connect

    def watching(path, *args, **kwargs):
        if str(path) == str(store_path):
            opened.append(str(path))
        return connect(path, *args, **kwargs)

    monkeypatch.setattr(schema.sqlite3, "connect", watching)
    return opened


async def test_replay_of_100_deliveries_opens_the_store_once(store_path, target, monkeypatch):
    seed(store_path, *(make_delivery(b"%d" % i) for i in range(100)))
    opened = count_connections(monkeypatch, store_path)
    result = await invoke("replay", "1-100", "--to", target.url + "/", "--store", str(store_path), "--json")
    assert result.exit_code == 0, result.output
    assert len(target.received) == 100
    assert len(opened) == 2  # one workspace: its reader and its writer, whatever the count
    with Store(store_path) as store:
        assert sum(len(store.attempts(seq)) for seq in range(1, 101)) == 100
