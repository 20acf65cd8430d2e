import json
import time

from hookinspect.formats.diff import DiffOptions, diff_json, diff_messages
from hookinspect.model import Headers, Response
from tests.factories import make_delivery


def response(body, status=200, headers=()):
    return Response(status=status, headers=Headers([("Content-Type", "application/json"), *headers]), body=body)


def test_json_changes_by_path_with_kinds():
    old = {"data": {"object": {"amount": 1200, "currency": "eur", "tags": ["a", "b"], "meta": {"x": 1}}}}
    new = {"data": {"object": {"amount": "1200", "tags": ["a"], "meta": {"x": 1, "y": 2}, "status": "paid"}}}
    changes = {(c.path, c.kind) for c in diff_json(old, new)}
    assert changes == {
        ("body.data.object.amount", "type_changed"), ("body.data.object.currency", "removed"),
        ("body.data.object.tags[1]", "removed"), ("body.data.object.meta.y", "added"),
        ("body.data.object.status", "added"),
    }


def test_arrays_by_key_ignore_order():
    old = [{"id": "a", "q": 1}, {"id": "b", "q": 2}]
    new = [{"id": "b", "q": 2}, {"id": "a", "q": 5}, {"id": "c", "q": 0}]
    by_position = diff_json(old, new)
    by_key = diff_json(old, new, array_key="id")
    assert len(by_position) > len(by_key)
    assert [(c.path, c.kind) for c in by_key] == [("body[id=c]", "added"), ("body[id=a].q", "changed")]


def test_ignore_globs_and_default_volatile_headers():
    a = response(b'{"id":"1","created":1,"items":[{"id":"x","v":1}]}', headers=[("Date", "Mon"), ("X-Request-Id", "1")])
    b = response(b'{"id":"2","created":2,"items":[{"id":"y","v":1}]}', headers=[("Date", "Tue"), ("X-Request-Id", "2")])
    all_changes = diff_messages(a, b, DiffOptions(use_default_ignores=False))
    assert {c.path for c in all_changes} >= {"headers.date", "headers.x-request-id", "body.created"}
    assert diff_messages(a, b, DiffOptions(ignore=["body.created", "body.**.id", "body.id"])) == []
    assert [c.path for c in diff_messages(a, b, DiffOptions(ignore=["body.*"]))] == ["body.items[0].id"]


def test_headers_case_insensitive_and_order_only_when_asked():
    a = response(b"{}", headers=[("X-A", "1"), ("X-B", "2")])
    b = response(b"{}", headers=[("x-b", "2"), ("x-a", "1")])
    assert diff_messages(a, b) == []
    assert [c.path for c in diff_messages(a, b, DiffOptions(header_order=True))] == ["headers"]


def test_content_length_is_not_news_when_the_body_differs():
    a = response(b'{"a":1}', headers=[("Content-Length", "7")])
    b = response(b'{"a":10}', headers=[("Content-Length", "8")])
    assert [c.path for c in diff_messages(a, b)] == ["body.a"]


def test_form_text_and_binary_bodies():
    form_a = make_delivery(b"a=1&b=2", content_type="application/x-www-form-urlencoded")
    form_b = make_delivery(b"a=1&b=3&c=4", content_type="application/x-www-form-urlencoded")
    assert [(c.path, c.kind) for c in diff_messages(form_a, form_b)] == [("body.form.b", "changed"), ("body.form.c", "added")]
    text = diff_messages(make_delivery(b"line1\nline2\n", content_type="text/plain"),
                            make_delivery(b"line1\nLINE2\n", content_type="text/plain"))
    assert text[0].detail.startswith("--- a/body") and "+LINE2" in text[0].detail
    binary = diff_messages(make_delivery(b"\x00\xff" * 10, content_type=None), make_delivery(b"\x00\xfe" * 10, content_type=None))
    assert binary[0].path == "body" and "sha256" in binary[0].old


def test_json_on_one_side_only_is_a_type_change():
    changes = diff_messages(response(b'{"ok":true}'), response(b"<html>502 Bad Gateway</html>"), status=(200, 502))
    assert [(c.path, c.kind) for c in changes] == [("status", "changed"), ("body", "type_changed")]


def test_huge_and_deep_bodies_do_not_break():
    big = {"items": [{"id": i, "v": "x" * 100} for i in range(170_000)]}
    raw = json.dumps(big).encode()
    assert len(raw) > 20 * 1024 * 1024
    big["items"][100_000]["v"] = "changed"
    start = time.perf_counter()
    changes = diff_messages(response(raw), response(json.dumps(big).encode()))
    assert [c.path for c in changes] == ["body.items[100000].v"]
    assert time.perf_counter() - start < 60  # generous: a hang, not a speed check
    deep = b"[" * 200_000 + b"]" * 200_000
    result = diff_messages(response(deep), response(deep[:-1] + b"1"))
    assert result and result[0].path == "body"  # unparseable as JSON (too deep): compared as text, no crash


def test_request_line_changes():
    a, b = make_delivery(method="POST", path="/a", query="x=1"), make_delivery(method="PUT", path="/b", query="x=2")
    changes = diff_messages(a, b, request_line=((a.method, a.target), (b.method, b.target)))
    assert [c.path for c in changes] == ["method", "path", "query"]
