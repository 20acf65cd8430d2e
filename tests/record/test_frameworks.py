"""The README's FastAPI, Flask and Django sections, each served by a real server: a
Stripe-signed and a GitHub-signed delivery are recorded byte for byte with the app's answer,
verify as `valid` with the staging secrets, replay (re-signed) into a developer's local app
that checks its own secrets, diff against that app's answer, and become a fixture that
`check` passes three times."""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from hookinspect.store.sqlite import Store
from tests.factories import (
    free_port,
    hookinspect_cmd,
    stop_process,
    store_count,
    wait_until,
    wait_until_up,
)
from tests.record.conftest import DJANGO_SETTINGS, DJANGO_URLS

STAGING_STRIPE = "whsec_staging_secret"
STAGING_GITHUB = "staging-github-secret"
LOCAL = ["--secret", "stripe=whsec_local_dev", "--secret", "github=local-github-secret"]


def stripe_delivery() -> tuple[str, bytes, list[tuple[str, str]]]:
    body = json.dumps({"id": "evt_1Rec0rdedStaging", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": {"id": "pi_1", "amount": 1999, "currency": "eur"}}}).encode()
    stamp = int(time.time())
    signature = hmac.new(STAGING_STRIPE.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return "/webhooks/stripe?attempt=1", body, [
        ("Content-Type", "application/json; charset=utf-8"), ("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
        ("Stripe-Signature", f"t={stamp},v1={signature}"), ("Authorization", "Bearer staging-api-token")]


def github_delivery() -> tuple[str, bytes, list[tuple[str, str]]]:
    body = b'{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{"full_name":"acme/shop"}}'
    signature = "sha256=" + hmac.new(STAGING_GITHUB.encode(), body, hashlib.sha256).hexdigest()
    return "/webhooks/github", body, [
        ("Content-Type", "application/json"), ("User-Agent", "GitHub-Hookshot/7c1d0e2"), ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"), ("X-Hub-Signature-256", signature)]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(hookinspect_cmd(*args), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("framework", ["fastapi", "flask", "django"])
def test_a_staging_app_records_webhooks_that_replay_and_check_locally(framework, served, verifying_app, tmp_path):
    app = served(framework, tmp_path / framework)
    sent = [stripe_delivery(), github_delivery()]
    answers = []
    with httpx.Client(timeout=10) as client:
        # One at a time, each stored before the next: a threaded server may finish answering the
        # first after the second, and the numbers below (#1 Stripe, #2 GitHub) follow the store.
        for count, (target, body, headers) in enumerate(sent, start=1):
            answers.append(client.post(app.url + target, content=body, headers=headers))
            wait_until(lambda count=count: app.store.exists() and store_count(app.store) >= count, 20,
                       f"recording {count} in the store")
        assert client.get(app.url + "/health").status_code == 404  # not selected: not recorded
        assert client.post(app.url + "/elsewhere", content=b"{}").status_code in (404, 405)
    assert [answer.json() for answer in answers] == [{"received": "stripe", "bytes": len(sent[0][1])},
                                                     {"received": "github", "bytes": len(sent[1][1])}]
    with Store(app.store) as store:
        recorded = [store.get(seq) for seq in sorted(store.seqs())]
        attempts = [store.attempts(delivery.seq) for delivery in recorded]
    assert len(recorded) == 2
    for delivery, (target, body, headers), answer, kept in zip(recorded, sent, answers, attempts, strict=True):
        assert delivery.body == body  # byte for byte
        assert (delivery.method, delivery.target) == ("POST", target)
        for name, value in headers:
            stored = delivery.headers.get(name)
            assert stored == ("REDACTED" if name == "Authorization" else value), (name, stored)
        assert [a.kind for a in kept] == ["recorded"]
        assert kept[0].response.status == 200 and json.loads(kept[0].response.body) == answer.json()
        assert kept[0].target_url == app.url + target
    assert [d.provider for d in recorded] == ["stripe", "github"]

    store = ["--store", str(app.store)]
    for seq, provider, secret in ((1, "stripe", STAGING_STRIPE), (2, "github", STAGING_GITHUB)):
        verified = cli("verify", str(seq), *store, "--secret", f"{provider}={secret}", "--json")
        assert verified.returncode == 0 and json.loads(verified.stdout)["verdict"] == "valid", verified.stdout
    # Without --to a recording names no target: the staging URL is shown, never sent to.
    refused = cli("replay", "1", *store)
    assert refused.returncode != 0 and "recording" in refused.stderr
    # The local app checks its own secrets: the staging signature fails there, a re-signed replay passes.
    local = verifying_app + "/webhooks/stripe"
    unsigned = cli("replay", "1", *store, "--to", local, "--no-resign", "--json")
    assert json.loads(unsigned.stdout)[0]["response"]["status"] == 400
    for seq, provider in ((1, "stripe"), (2, "github")):
        replayed = cli("replay", str(seq), *store, "--to", f"{verifying_app}/webhooks/{provider}", *LOCAL, "--json")
        assert json.loads(replayed.stdout)[0]["response"]["status"] == 200, replayed.stdout + replayed.stderr
    compared = cli("diff", "1", *store, "--to", local, *LOCAL, "--json")
    # The same status and JSON; the local app is FastAPI whatever the staging one was, so its
    # headers may differ (Flask ends its JSON with a newline: one byte more of Content-Length).
    assert compared.returncode in (0, 1), compared.stderr
    assert [c for c in json.loads(compared.stdout) if not c["path"].startswith("headers.")] == [], compared.stdout
    fixture = tmp_path / f"{framework}.json"
    exported = cli("export", "1", "2", *store, "--format", "fixture", "-o", str(fixture))
    assert exported.returncode == 0, exported.stderr
    for _ in range(3):
        checked = cli("check", str(fixture), "--target", verifying_app, *LOCAL, "--json")
        assert checked.returncode == 0, checked.stdout + checked.stderr


DJANGO_ASGI = """
from django.core.asgi import get_asgi_application
from hookinspect.record import ASGIRecorder

application = ASGIRecorder(get_asgi_application(), store="webhooks.db", paths=["/webhooks/*"])
"""


def test_django_s_asgi_application_records_too(tmp_path):
    """The README's Django line, `asgi.py` with ASGIRecorder, served by uvicorn."""
    pytest.importorskip("django")
    pytest.importorskip("uvicorn")
    (tmp_path / "settings.py").write_text(DJANGO_SETTINGS)
    (tmp_path / "urls.py").write_text(textwrap.dedent(DJANGO_URLS))
    (tmp_path / "asgi.py").write_text(DJANGO_ASGI)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "asgi:application", "--host", "127.0.0.1", "--port",
                               str(port), "--no-access-log"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(tmp_path), "DJANGO_SETTINGS_MODULE": "settings"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server, timeout=30)
        target, body, headers = stripe_delivery()
        answer = httpx.post(url + target, content=body, headers=headers, timeout=10)
        assert answer.json() == {"received": "stripe", "bytes": len(body)}
        store = tmp_path / "webhooks.db"
        wait_until(lambda: store.exists() and store_count(store) >= 1, 20, "the recording in the store")
    finally:
        stop_process(server)
    with Store(store) as opened:
        [delivery] = [opened.get(seq) for seq in opened.seqs()]
        [kept] = opened.attempts(delivery.seq)
    assert delivery.body == body and delivery.target == target and delivery.provider == "stripe"
    assert kept.kind == "recorded" and json.loads(kept.response.body) == answer.json()
    verified = cli("verify", str(delivery.seq), "--store", str(store), "--secret", f"stripe={STAGING_STRIPE}", "--json")
    assert json.loads(verified.stdout)["verdict"] == "valid", verified.stdout
