"""Captured text full of terminal controls changes nothing: every printed output of every
command shows it escaped (0 raw control bytes), whatever field it sits in."""

import json

import pytest
from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.model import Rejection
from hookinspect.store.sqlite import Store
from tests.factories import make_attempt, make_delivery

runner = CliRunner()
# One of every class: C0 (BEL, BS), RIS, CSI, OSC 0/8/52, DCS, APC, C1 (CSI, NEL), DEL, bidi overrides.
EVIL = ("\x07\x08\x1bc\x1b[31m\x1b[2J\x1b]0;t\x07\x1b]8;;http://evil\x1b\\\x1b]52;c;ZQ==\x07"
        "\x1bP+q\x1b\\\x1b_a\x1b\\\x9b1m\x85\x7f\u202e\u2066")


def raw_controls(text: str) -> list[str]:
    return sorted({repr(c) for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0
                   or c in "\u202e\u2066"})


@pytest.fixture
def hostile_store(store_path):
    with Store(store_path) as store:
        for n in range(2):
            delivery = make_delivery(json.dumps({"type": EVIL, "n": n}).encode(), path=f"/x{EVIL}",
                                     query=f"q={EVIL}", headers=[("X-Evil", EVIL), ("User-Agent", EVIL)])
            delivery.provider, delivery.event_type, delivery.verdict_reason = "stripe", EVIL, EVIL
            delivery.verdict = "invalid"
            seq = store.insert_delivery(delivery)
            attempt = make_attempt(seq, 500, body=EVIL.encode(), target="http://127.0.0.1:9/" + EVIL)
            attempt.error_message = EVIL
            store.add_attempt(attempt)
        store.enqueue(1, "http://t/" + EVIL, 0)
        store.add_rejection(Rejection(413, EVIL, EVIL, EVIL, "/" + EVIL, EVIL.encode(), EVIL.encode()))
    return store_path


@pytest.mark.parametrize("args", [
    ["ls"], ["ls", "--json"], ["show", "1"], ["show", "1", "--json"], ["attempts", "1"], ["diff", "1", "2"],
    ["export", "1", "--format", "curl"], ["export", "1", "--format", "httpie"], ["export", "1", "--format", "json"],
    ["queue"], ["verify", "1"], ["ls", "--rejected"], ["ls", "--rejected", "--json"], ["show", EVIL], ["ls", "--filter", EVIL], ["replay", "1", "--to", EVIL],
], ids=lambda args: " ".join(a if a.isprintable() else "EVIL" for a in args))
def test_no_command_prints_a_raw_control_byte(hostile_store, args):
    result = runner.invoke(app, [*args, "--store", str(hostile_store)])
    assert raw_controls(result.stdout) == [] and raw_controls(result.stderr) == [], (result.stdout, result.stderr)
    assert "Traceback" not in result.output


def test_live_lines_show_hostile_text_escaped():
    from hookinspect.cli.listen import render_event
    from hookinspect.intake.receiver import ReceiverEvent
    from hookinspect.workspace import StoreChange

    delivery = make_delivery(b"{}", path="/" + EVIL, query="a=" + EVIL, headers=[("Content-Type", EVIL)])
    delivery.seq, delivery.provider, delivery.event_type, delivery.verdict = 1, "stripe", EVIL, "invalid"
    delivery.verdict_reason = EVIL
    attempt = make_attempt(1, 500, body=EVIL.encode(), target="http://t/" + EVIL)
    for event in (StoreChange("deliveries", 1, delivery=delivery), ReceiverEvent("rejected", message=EVIL),
                  ReceiverEvent("relay", message=EVIL), ReceiverEvent("forwarded", delivery, attempt, message=""),
                  StoreChange("failing", message=EVIL)):
        assert raw_controls(render_event(event).plain) == []
