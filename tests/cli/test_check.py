import asyncio
import json
import xml.etree.ElementTree as ET

from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.formats.export import ExportItem, export
from hookinspect.formats.samples import build_sample_request, find_sample
from tests.factories import make_attempt, make_delivery

runner = CliRunner()


def fixture_file(tmp_path, name="shop.json", events=("payment_intent.succeeded", "charge.refunded")):
    items = []
    for i, event in enumerate(events, start=1):
        sample = find_sample(f"stripe/{event}")
        request = build_sample_request(sample, "http://x/", "whsec_recorded", now=1_700_000_000)
        delivery = make_delivery(request.body, path="/stripe/webhook", content_type=None, headers=request.headers.pairs())
        delivery.seq, delivery.provider, delivery.event_type = i, "stripe", event
        items.append(ExportItem(delivery, [make_attempt(i, 200, body=b'{"received": true, "type": "x"}')]))
    text, _ = export(items, "fixture")
    path = tmp_path / name
    path.write_text(text)
    return path


def invoke(*args):
    return runner.invoke(app, list(args))


async def test_check_app_passes_with_the_secret_and_writes_junit(tmp_path):
    path = fixture_file(tmp_path)
    report = tmp_path / "reports" / "webhooks.xml"
    result = await asyncio.to_thread(invoke, "check", str(path), "--app", "tests.apps:asgi_app",
                                     "--secret", "stripe=whsec_apps", "--junit", str(report))
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.stdout
    assert ET.parse(report).getroot().find("testsuite").get("tests") == "2"


async def test_check_fails_with_a_diff_and_exit_1(tmp_path):
    path = fixture_file(tmp_path)
    result = await asyncio.to_thread(invoke, "check", str(path), "--app", "tests.apps:wsgi_app")
    assert result.exit_code == 1
    assert "~ status: 200 → 400" in result.stdout and "bad signature" in result.stdout
    assert "0 passed, 2 failed" in result.stdout


async def test_check_json_and_only(tmp_path):
    path = fixture_file(tmp_path)
    result = await asyncio.to_thread(invoke, "check", str(tmp_path), "--app", "tests.apps:asgi_app", "--secret",
                                     "stripe=whsec_apps", "--only", "charge.*", "--json")
    data = json.loads(result.stdout)
    assert data["passed"] == 1 and data["failed"] == 0 and data["results"][0]["name"] == "stripe charge.refunded #2"
    assert path.exists()


async def test_check_usage_and_network_errors(tmp_path):
    path = fixture_file(tmp_path)
    neither = await asyncio.to_thread(invoke, "check", str(path))
    assert neither.exit_code == 2 and "exactly one of --target" in neither.stderr
    down = await asyncio.to_thread(invoke, "check", str(path), "--target", "http://127.0.0.1:1")
    assert down.exit_code == 4 and "not reachable" in down.stderr and "Traceback" not in down.output
    garbage = tmp_path / "g.json"
    garbage.write_text("[]")
    bad = await asyncio.to_thread(invoke, "check", str(garbage), "--app", "tests.apps:asgi_app")
    assert bad.exit_code == 2 and "not a hookinspect fixture" in bad.stderr


async def test_import_a_fixture_into_the_store(tmp_path):
    path = fixture_file(tmp_path)
    store = tmp_path / "s.db"
    result = await asyncio.to_thread(invoke, "import", str(path), "--store", str(store))
    assert "imported 2 deliveries" in result.stderr
    rows = json.loads((await asyncio.to_thread(invoke, "ls", "--json", "--store", str(store))).stdout)
    assert {r["event_type"] for r in rows} == {"payment_intent.succeeded", "charge.refunded"}


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_the_readme_fixtures_pass_again_and_again_against_the_example_backend(tmp_path):
    """samples/fixtures/shop.json against samples/backend, three runs on one backend: a fixture
    whose expectation depended on earlier runs would pass once and then fail."""
    import os
    import subprocess

    from tests.factories import free_port, hookinspect_cmd, stop_process, wait_until_up

    port = free_port()
    backend = subprocess.Popen([__import__("sys").executable, str(ROOT / "samples/backend/app.py"), "--port", str(port)],
                               env={**os.environ, "SHOP_STRIPE_SECRET": "whsec_demo"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", backend)
        fixture = str(ROOT / "samples/fixtures/shop.json")
        for _ in range(3):
            run = subprocess.run(hookinspect_cmd("check", fixture, "--target", f"127.0.0.1:{port}",
                                                 "--secret", "stripe=whsec_demo", "--strict", "--json"),
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stdout + run.stderr
            assert json.loads(run.stdout)["passed"] == 4
        # No secret: a warning before anything is sent, then the backend's refusals.
        run = subprocess.run(hookinspect_cmd("check", fixture, "--target", f"127.0.0.1:{port}"),
                             capture_output=True, text=True, timeout=60, env={**os.environ, "HOOKINSPECT_SECRET_STRIPE": ""})
        assert run.returncode == 1 and "3 stripe-signed fixtures cannot be re-signed" in run.stderr
        strict = subprocess.run(hookinspect_cmd("check", fixture, "--target", f"127.0.0.1:{port}", "--strict"),
                                capture_output=True, text=True, timeout=60)
        assert strict.returncode == 2 and "give --secret stripe=" in strict.stderr
        assert len(strict.stderr.strip().splitlines()) == 1
    finally:
        stop_process(backend)
