"""Recording to a relay channel, configured only by the environment: a staging app posts what
it records to the channel, and a tester's `listen --source` stores it byte for byte."""

import subprocess
import sys

import httpx
import pytest

from hookinspect.store.sqlite import Store
from tests.factories import free_port, stop_process, store_count, wait_until, wait_until_up
from tests.record.test_frameworks import STAGING_STRIPE, stripe_delivery
from tests.tunnel import (  # noqa: F401
    STARTED,
    new_channel,
    start_listen_tracked,
    start_relay,
    stop_leftover_processes,
)

APP = """
from fastapi import FastAPI, Request
from hookinspect.record import ASGIRecorder

app = FastAPI()

@app.post("/webhooks/{provider}")
async def webhook(provider: str, request: Request):
    return {"received": provider, "bytes": len(await request.body())}

app = ASGIRecorder(app)  # HOOKINSPECT_RECORD says where
"""


def test_an_app_configured_by_the_environment_records_to_a_relay_channel(tmp_path):
    pytest.importorskip("fastapi")
    _, relay = start_relay(tmp_path / "relay")
    channel = new_channel(relay)
    laptop = tmp_path / "laptop.db"
    start_listen_tracked(laptop, "--source", channel["url"], "--token", channel["token"])
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={"PATH": "", "PYTHONPATH": str(tmp_path), "HOOKINSPECT_RECORD": channel["url"]})
    STARTED.append(app)
    wait_until_up(f"http://127.0.0.1:{port}", app, timeout=30)
    target, body, headers = stripe_delivery()
    answer = httpx.post(f"http://127.0.0.1:{port}{target}", content=body, headers=headers)
    assert answer.json() == {"received": "stripe", "bytes": len(body)}
    wait_until(lambda: store_count(laptop) >= 1, 20, "the recording at the tester's laptop")
    with Store(laptop) as store:
        delivery = store.get(1)
    assert delivery.body == body and delivery.target == target and delivery.provider == "stripe"
    assert delivery.headers.get("stripe-signature") == dict(headers)["Stripe-Signature"]
    assert delivery.headers.get("authorization") == "REDACTED"  # masked before it left the app
    verified = subprocess.run([sys.executable, "-m", "hookinspect", "verify", "1", "--store", str(laptop),
                               "--secret", f"stripe={STAGING_STRIPE}"], capture_output=True, text=True, timeout=60)
    assert "valid" in verified.stdout, verified.stdout + verified.stderr
    stop_process(app)
