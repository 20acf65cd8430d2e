import gzip
import os

from hookinspect.body import NOT_JSON
from hookinspect.model import Delivery, Headers
from hookinspect.values import new_id
from tests.factories import make_delivery


def test_headers_keep_order_and_duplicates_with_case_insensitive_lookup():
    headers = Headers([("X-A", "1"), ("Set-Cookie", "a=1"), ("x-a", "2"), ("set-cookie", "b=2")])
    assert headers.get("x-A") == "1"
    assert headers.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert [k for k, _ in headers] == ["X-A", "Set-Cookie", "x-a", "set-cookie"]
    assert headers.with_set("X-A", "9").pairs() == [("X-A", "9"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")]
    assert "x-a" not in headers.without("X-a")
    # a looked-up Headers still answers for its own pairs after deriving a new one
    assert headers.with_set("x-a", "9").get("X-A") == "9" and headers.get("x-a") == "1"
    assert Headers.from_raw([(b"A", b"1"), (b"a", b"2")]).get("a") == "1"


def test_headers_round_trip_raw_bytes_that_are_not_utf8():
    raw = [(b"X-Weird", b"caf\xe9"), (b"X-Utf8", "é".encode())]
    assert Headers.from_raw(raw).raw() == raw


def test_delivery_views_json_form_and_gzip():
    assert make_delivery(b'{"a":1}').json() == {"a": 1}
    assert make_delivery(b"{nope").json() is NOT_JSON
    form = make_delivery(b"a=1&b=x+y&a=2", content_type="application/x-www-form-urlencoded")
    assert form.form() == [("a", "1"), ("b", "x y"), ("a", "2")]
    assert make_delivery(b"a=1").form() is None
    zipped = make_delivery(gzip.compress(b'{"z":true}'), headers=[("Content-Encoding", "gzip")])
    assert zipped.json() == {"z": True}
    assert zipped.body.startswith(b"\x1f\x8b")  # the stored bytes stay as received


def test_to_dict_and_from_dict_are_inverse_and_byte_exact():
    original = make_delivery(b"\xff\x00binary", query="a=1&b=%20", headers=[("X-Dup", "1"), ("X-Dup", "2")])
    original.seq = 7
    data = original.to_dict()
    assert data["headers"][1:] == [["X-Dup", "1"], ["X-Dup", "2"]]
    assert "body_base64" in data and "body_text" not in data
    again = Delivery.from_dict(data)
    assert again.body == original.body and again.headers == original.headers
    assert again.received_us == original.received_us and again.query == original.query
    assert again.content_hash() == original.content_hash()


def test_received_at_has_microseconds():
    delivery = make_delivery(received_us=1_764_345_600_123_456)
    assert delivery.received_at == "2025-11-28T16:00:00.123456Z"


def test_a_forked_process_does_not_repeat_its_parents_ids():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave without running anything else
        os.write(write_end, new_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    assert len(child_id) == 32 and child_id[12:] != new_id()[12:]
