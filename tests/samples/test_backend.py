"""The example backend of the README walkthrough, driven by `hookinspect send` and `replay`."""

import asyncio
import importlib.util
import json
from pathlib import Path

from aiohttp import web
from typer.testing import CliRunner

from hookinspect.cli.app import app

runner = CliRunner()
BACKEND = Path(__file__).resolve().parents[2] / "samples" / "backend" / "app.py"


_MODULE = {}


def module_key(name):
    return getattr(_MODULE["m"], name)


async def start_backend(secret):
    spec = importlib.util.spec_from_file_location("example_backend", BACKEND)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _MODULE["m"] = module
    backend = module.create_app(secret)
    app_runner = web.AppRunner(backend)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    return app_runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", backend


async def send(*args):
    return await asyncio.to_thread(runner.invoke, app, ["send", *args])


async def test_shop_marks_orders_and_rejects_bad_signatures():
    app_runner, url, backend = await start_backend("whsec_demo")
    try:
        ok = await send("stripe/payment_intent.succeeded", "--to", url + "/", "--secret", "whsec_demo", "--json")
        assert ok.exit_code == 0 and json.loads(ok.stdout)["response"]["status"] == 200
        assert backend[module_key("ORDERS")]["1042"]["status"] == "paid"
        bad = await send("stripe/payment_intent.payment_failed", "--to", url + "/", "--secret", "whsec_wrong")
        assert bad.exit_code == 1 and "signature mismatch" in bad.stdout
        assert "1043" not in backend[module_key("ORDERS")]
    finally:
        await app_runner.cleanup()


async def test_lab_takes_a_final_report_then_its_correction():
    app_runner, url, backend = await start_backend("x")
    try:
        corrected_first = await send("fhir/diagnosticreport.corrected", "--to", url + "/", "--json")
        assert corrected_first.exit_code == 1
        assert json.loads(corrected_first.stdout)["response"]["status"] == 409  # a correction for an unknown report
        assert (await send("fhir/diagnosticreport.final", "--to", url + "/")).exit_code == 0
        assert (await send("fhir/diagnosticreport.corrected", "--to", url + "/")).exit_code == 0
        report = backend[module_key("REPORTS")]["lipids-2026-1128-0042"]
        assert report["status"] == "corrected" and report["values"]["ldl"] == 3.9
    finally:
        await app_runner.cleanup()
