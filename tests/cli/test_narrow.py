"""Every table command at 80 columns: no line wider than the terminal, and no name (an event,
a path, a header, a sample) broken across lines."""

from __future__ import annotations

import os
import subprocess

import pytest

from hookinspect.store.sqlite import Store
from tests.factories import hookinspect_cmd, make_attempt, make_delivery

LONG_EVENT = "checkout.session.async_payment_succeeded"


@pytest.fixture
def narrow_store(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store:
        for event in (LONG_EVENT, "invoice.paid"):
            delivery = make_delivery(path="/stripe/webhook")
            delivery.provider, delivery.event_type, delivery.verdict = "stripe", event, "valid"
            seq = store.insert_delivery(delivery)
            store.add_attempt(make_attempt(seq, 502, target="http://127.0.0.1:9/webhooks/stripe"))
        store.enqueue(1, "http://127.0.0.1:9/webhooks/stripe", 0)
    return path


@pytest.mark.parametrize("args, whole", [
    (["ls"], ["/stripe/webhook", "stripe invoice.paid"]),
    (["attempts", "1"], ["http://127.0.0.1:9/webhooks/stripe"]),
    (["queue"], ["http://127.0.0.1:9/webhooks/stripe"]),
    (["providers"], ["X-Signature-Ed25519", "X-Twilio-Email-Event-Webhook-Signature"]),
    (["samples"], ["stripe/payment_intent.succeeded", "/stripe/webhook"]),
], ids=lambda value: " ".join(value) if isinstance(value, list) and value and value[0][0].isalpha() else None)
def test_tables_read_well_at_80_columns(narrow_store, args, whole):
    store_args = ["--store", str(narrow_store)] if args[0] in ("ls", "attempts", "queue") else []
    result = subprocess.run(hookinspect_cmd(*args, *store_args), capture_output=True, text=True, timeout=30,
                            env={**os.environ, "COLUMNS": "80", "LINES": "40"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table_lines = [line for line in lines if not line.startswith("  ")]  # stacked details wrap in the terminal
    assert all(len(line) <= 80 for line in table_lines), [line for line in table_lines if len(line) > 80]
    for name in whole:
        assert name in result.stdout, f"{name!r} broken or cut at 80 columns:\n{result.stdout}"
    if args == ["ls"]:  # a row a line: a name too long for its column is cut with "…", never wrapped
        assert len(lines) == 3 and ("checkout.session.async_payment_succeeded" in lines[2] or "…" in lines[2])
