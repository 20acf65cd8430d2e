"""diff against real loopback apps: an old and a new version of a small webhook handler."""

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web
from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.store.sqlite import Store
from tests.factories import make_attempt, make_delivery

runner = CliRunner()
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "diff_two_versions.json"


def handler_app(version: int) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        event = json.loads(await request.read())
        body = {"received": True, "order": event["data"]["object"]["metadata"]["order_id"], "status": "paid",
                "request_id": f"req-{version}-{id(request)}"}
        if version == 2:
            body["status"] = "PAID"
            body["amount_cents"] = event["data"]["object"]["amount"]
            del body["received"]
        return web.json_response(body, headers={"X-Request-Id": str(id(request)), "X-Version": str(version)})

    application = web.Application()
    application.router.add_post("/{tail:.*}", handle)
    return application


@pytest.fixture
async def versions():
    runners, urls = [], []
    for version in (1, 2):
        app_runner = web.AppRunner(handler_app(version))
        await app_runner.setup()
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        runners.append(app_runner)
        urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/")
    yield urls
    for app_runner in runners:
        await app_runner.cleanup()


def stripe_event(order: str, amount: int, event_type: str = "payment_intent.succeeded") -> bytes:
    return json.dumps({"type": event_type, "data": {"object": {"amount": amount, "metadata": {"order_id": order}}}}).encode()


def seed_stripe_events(store_path, *deliveries):
    with Store(store_path) as store:
        for delivery in deliveries:
            delivery.provider, delivery.event_type = "stripe", json.loads(delivery.body)["type"]
            store.insert_delivery(delivery)


async def invoke(*args):
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def test_two_deliveries_json_matches_the_golden_file(store_path):
    seed_stripe_events(store_path, make_delivery(stripe_event("1042", 1200), headers=[("Date", "Mon")]),
         make_delivery(stripe_event("1042", 2500), path="/stripe/v2", headers=[("Date", "Tue"), ("X-New", "1")]))
    result = await invoke("diff", "1", "2", "--json", "--store", str(store_path))
    assert result.exit_code == 1
    assert json.loads(result.stdout) == json.loads(GOLDEN.read_text())


async def test_identical_deliveries_exit_0(store_path):
    seed_stripe_events(store_path, make_delivery(stripe_event("1", 1)), make_delivery(stripe_event("1", 1)))
    result = await invoke("diff", "1", "2", "--store", str(store_path))
    assert result.exit_code == 0 and "no differences" in result.stdout


async def test_old_versus_new_backend_with_ignore_rules(store_path, versions):
    old, new = versions
    seed_stripe_events(store_path, make_delivery(stripe_event("1042", 4990)))
    result = await invoke("diff", "1", "--to", old, "--against", new, "--json", "--store", str(store_path))
    assert result.exit_code == 1
    changes = {(c["path"], c["kind"]) for c in json.loads(result.stdout)}
    assert changes == {("headers.x-version", "changed"), ("body.received", "removed"), ("body.status", "changed"),
                       ("body.request_id", "changed"), ("body.amount_cents", "added")}
    narrowed = await invoke("diff", "1", "--to", old, "--against", new, "--json", "-i", "body.request_id",
                            "-i", "headers.x-*", "--store", str(store_path))
    assert {c["path"] for c in json.loads(narrowed.stdout)} == {"body.received", "body.status", "body.amount_cents"}
    same = await invoke("diff", "1", "--to", old, "--against", old, "-i", "body.request_id", "--store", str(store_path))
    assert same.exit_code == 0 and "no differences" in same.stdout


async def test_new_answer_against_the_recorded_one(store_path, versions):
    old, new = versions
    seed_stripe_events(store_path, make_delivery(stripe_event("7", 100)))
    first = await invoke("replay", "1", "--to", old, "--store", str(store_path))
    assert first.exit_code == 0
    result = await invoke("diff", "1", "--to", new, "-i", "body.request_id", "-i", "headers.x-version", "--store", str(store_path))
    assert result.exit_code == 1
    assert "body.status" in result.stdout and "'paid' → 'PAID'" in result.stdout
    with Store(store_path) as store:
        assert [a.kind for a in store.attempts(1)] == ["replay", "diff"]


async def test_a_set_prints_a_summary_table(store_path, versions):
    old, new = versions
    seed_stripe_events(store_path, *(make_delivery(stripe_event(str(i), i * 100)) for i in range(5)),
         make_delivery(stripe_event("x", 1, "charge.refunded")))
    result = await invoke("diff", "--event", "payment_intent.*", "--to", old, "--against", new, "-c", "4",
                          "--store", str(store_path))
    assert result.exit_code == 1
    assert "5 of 5 differ" in result.stderr
    assert "removed body.received" in result.stdout or "changed" in result.stdout


async def test_one_side_down_is_a_clear_error(store_path, versions):
    old, _ = versions
    seed_stripe_events(store_path, make_delivery(stripe_event("1", 1)))
    result = await invoke("diff", "1", "--to", old, "--against", "http://127.0.0.1:1/", "--store", str(store_path))
    assert result.exit_code == 2 and "connection refused" in result.stderr and "Traceback" not in result.output


async def test_usage_errors(store_path):
    seed_stripe_events(store_path, make_delivery(stripe_event("1", 1)))
    assert (await invoke("diff", "1", "--store", str(store_path))).exit_code == 2
    no_record = await invoke("diff", "1", "--to", "http://127.0.0.1:1/", "--store", str(store_path))
    assert no_record.exit_code == 2 and "no recorded answer" in no_record.stderr
    with Store(store_path) as store:
        store.add_attempt(make_attempt(1, 200))
    assert (await invoke("diff", "1", "--to", "not a url", "--store", str(store_path))).exit_code == 2
