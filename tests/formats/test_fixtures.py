import json

import pytest
from tinydb import Query, TinyDB

from hookinspect.errors import UsageError
from hookinspect.formats.export import ExportItem, export
from hookinspect.formats.fixtures import Expectation, load_fixture
from tests.factories import make_attempt, make_delivery


def write_fixture(tmp_path, items, **options):
    text, masked = export(items, "fixture", **options)
    path = tmp_path / "hooks.json"
    path.write_text(text)
    return path, masked


def test_round_trip_is_byte_exact_and_secrets_are_redacted(tmp_path):
    binary = make_delivery(b"\x00\xff\xfe raw", content_type="application/octet-stream", seq=None)
    signed = make_delivery(b'{"type":"invoice.paid"}', headers=[("Stripe-Signature", "t=1,v1=abc")])
    signed.provider, signed.event_type, signed.seq = "stripe", "invoice.paid", 7
    path, masked = write_fixture(tmp_path, [ExportItem(binary, []), ExportItem(signed, [make_attempt(7, 201)])])
    assert masked == ["#7 header Stripe-Signature"]
    text = path.read_text()
    assert '"body_base64"' in text and '"body_text": "{\\"type\\":\\"invoice.paid\\"}"' in text
    assert "abc" not in text
    first, second = load_fixture(path)
    assert first.delivery.body == binary.body and second.delivery.body == signed.body
    assert second.name == "stripe invoice.paid #7" and second.expect.status == 201
    assert first.expect.status == "2xx"  # never answered: any success will do


def test_expect_json_takes_the_latest_successful_answer(tmp_path):
    delivery = make_delivery()
    delivery.seq = 1
    attempts = [make_attempt(1, 200, body=b'{"received":true,"n":1,"nested":{"x":1}}'), make_attempt(1, 500)]
    path, _ = write_fixture(tmp_path, [ExportItem(delivery, attempts)], with_json=True)
    [record] = load_fixture(path)
    assert record.expect.status == 200 and record.expect.json == {"$.received": True, "$.n": 1}


def test_files_are_plain_tinydb_documents(tmp_path):
    items = []
    for i, event in enumerate(["invoice.paid", "invoice.created", "charge.refunded"]):
        d = make_delivery(path=f"/p{i}")
        d.provider, d.event_type = "stripe", event
        items.append(ExportItem(d, []))
    path, _ = write_fixture(tmp_path, items)
    db = TinyDB(path, access_mode="r")
    assert len(db.table("deliveries").search(Query().event_type.matches(r"invoice\..*"))) == 2
    db.close()
    assert [r.delivery.event_type for r in load_fixture(path, ["invoice.*"])] == ["invoice.paid", "invoice.created"]


def test_hand_written_expectations_are_validated(tmp_path):
    assert Expectation.from_dict({"status": "2xx", "json": {"$.ok": True}, "max_ms": 500}, "x").max_ms == 500
    for bad in ({"status": "9xx"}, {"status": True}, {"json": {"ok": True}}, {"max_ms": "fast"}, {"statsu": 200},
                {"max_ms": float("nan")}, {"max_ms": True}, {"max_ms": -5}):  # NaN and True would always pass
        with pytest.raises(UsageError):
            Expectation.from_dict(bad, "record 1")


@pytest.mark.parametrize("content,message", [
    (b"\xff\xfe", "not UTF-8"),
    (b"{nope", "not valid JSON"),
    (b'{"_default": {}}', "not a hookinspect fixture"),
    (json.dumps({"meta": {"1": {"format": "hookinspect-fixture", "version": 99}}, "deliveries": {}}).encode(), "version 99"),
    (json.dumps({"meta": {"1": {"format": "hookinspect-fixture", "version": 1}},
                 "deliveries": {"1": {"request": {"path": "/x"}}}}).encode(), "record 1 is malformed"),
    (json.dumps({"meta": {"1": {"format": "hookinspect-fixture", "version": 1}},
                 "deliveries": {"1": {"request": {"method": "POST /x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "path": "/x",
                                                  "headers": []}}}}).encode(), "record 1 has method .* not an HTTP method"),
    (json.dumps({"meta": {"1": {"format": "hookinspect-fixture", "version": 1}},
                 "deliveries": {"1": {"request": {"method": "POST", "path": "/x", "headers": [["X-A", "1\nX-B: 2"]]}}}}
                ).encode(), "record 1 has a header with a line break"),
])
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load_fixture(path)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read fixture"):
        load_fixture(tmp_path / "nope.json")
