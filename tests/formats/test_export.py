import asyncio
import gzip
import json

import pytest

from hookinspect.errors import UsageError
from hookinspect.formats.export import ExportItem, export, render_raw
from hookinspect.formats.redaction import Redaction, redact
from hookinspect.intake.importing import parse_import
from hookinspect.model import Headers
from hookinspect.store.sqlite import Store
from tests.factories import import_into, make_attempt, make_delivery

SPREAD = {
    "json": (b'{"type":"invoice.paid","amount":1200}', "application/json", []),
    "form": (b"a=1&b=%20x&a=2", "application/x-www-form-urlencoded", []),
    "binary": (bytes(range(256)) * 4, "application/octet-stream", []),
    "invalid_utf8": (b'{"n":"caf\xe9\xff"}', "application/json", []),
    "nul": (b"a\x00b", "text/plain", []),
    "gzip": (gzip.compress(b'{"z":1}'), "application/json", [("Content-Encoding", "gzip")]),
    "quotes_and_shell": (b"it's $(rm -rf ~) `x` \"q\" \\n", "text/plain", []),
    "empty": (b"", None, []),
    "terminal_controls": ("\x1bc\x1b[31m\x1b]0;t\x07\x1b]52;c;ZXZpbA==\x07\x1bP+q\x1b\\\x9b2J\u202eevil\x7f".encode(),
                          "text/plain", []),
    "no_content_type": (b'{"sent":"without a content type"}', None, []),
    "at_sign": (b"@/etc/passwd", "text/plain", []),
}


def items_for(name):
    body, ctype, headers = SPREAD[name]
    delivery = make_delivery(body, content_type=ctype, headers=[("Host", "hooks.example"), *headers], query="a=1&a=2")
    delivery.seq = 1
    return [ExportItem(delivery, [make_attempt(1, 200)])]


@pytest.mark.parametrize("fmt", ["json", "har"])
@pytest.mark.parametrize("name", list(SPREAD))
def test_export_then_import_round_trips_byte_exact(tmp_path, fmt, name):
    items = items_for(name)
    text, _ = export(items, fmt, redact_secrets=False)
    [loaded] = parse_import(text.encode(), "export")
    original = items[0].delivery
    assert loaded.delivery.body == original.body
    assert loaded.delivery.method == original.method and loaded.delivery.path == original.path
    assert loaded.delivery.query == original.query
    assert loaded.delivery.headers.pairs() == original.headers.pairs()
    assert loaded.attempts[0].response.status == 200
    assert import_into(tmp_path / "s.db", [loaded]) == (1, 0)
    assert import_into(tmp_path / "s.db", parse_import(text.encode())) == (0, 1)  # duplicate skipped
    with Store(tmp_path / "s.db") as store:
        assert store.get(1).body == original.body and store.attempts(1)[0].response.status == 200


def test_har_has_the_required_structure():
    items = items_for("binary") + items_for("json")
    items[1].attempts = [make_attempt(1, None, error_kind="connect")]
    doc = json.loads(export(items, "har")[0])
    log = doc["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "hookinspect"
    for entry in log["entries"]:
        for key in ("startedDateTime", "time", "request", "response", "cache", "timings"):
            assert key in entry
        for key in ("method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"):
            assert key in entry["request"]
        for key in ("status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL", "headersSize", "bodySize"):
            assert key in entry["response"]
        assert entry["startedDateTime"].endswith("Z")
    assert log["entries"][0]["request"]["postData"]["encoding"] == "base64"
    assert log["entries"][0]["request"]["queryString"] == [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]
    assert log["entries"][1]["response"]["status"] == 0 and "refused" in log["entries"][1]["response"]["_error"]


BROWSER_HAR = {
    "log": {
        "version": "1.2", "creator": {"name": "Firefox", "version": "133.0"},
        "pages": [{"startedDateTime": "2026-11-28T10:00:00.000+01:00", "id": "page_1", "title": "x", "pageTimings": {}}],
        "entries": [
            {"pageref": "page_1", "startedDateTime": "2026-11-28T10:00:01.250+01:00", "time": 42.5,
             "request": {"method": "POST", "url": "https://api.example.com/hooks/stripe?attempt=2", "httpVersion": "HTTP/2",
                         "cookies": [], "headers": [{"name": ":authority", "value": "api.example.com"},
                                                    {"name": "content-type", "value": "application/json"},
                                                    {"name": "stripe-signature", "value": "t=1,v1=abc"}],
                         "queryString": [{"name": "attempt", "value": "2"}],
                         "postData": {"mimeType": "application/json", "params": [], "text": "{\"id\":\"evt_1\"}"},
                         "headersSize": 120, "bodySize": 13},
             "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/2", "cookies": [],
                          "headers": [{"name": "content-type", "value": "application/json"}],
                          "content": {"size": 11, "mimeType": "application/json", "text": "eyJvayI6dHJ1ZX0=", "encoding": "base64"},
                          "redirectURL": "", "headersSize": 50, "bodySize": 11},
             "cache": {}, "timings": {"blocked": 0, "dns": 0, "connect": 0, "send": 0, "wait": 40, "receive": 2.5, "ssl": -1}},
            {"startedDateTime": "2026-11-28T10:00:02.000+01:00", "time": 3,
             "request": {"method": "GET", "url": "https://api.example.com/health", "httpVersion": "HTTP/1.1",
                         "cookies": [], "headers": [], "queryString": [], "headersSize": -1, "bodySize": 0},
             "response": {"status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
                          "content": {"size": 0, "mimeType": ""}, "redirectURL": "", "headersSize": -1, "bodySize": -1, "_error": "NS_ERROR_NET_RESET"},
             "cache": {}, "timings": {"send": 0, "wait": 0, "receive": 0}},
        ],
    }
}


def test_a_browser_har_imports_with_its_responses(tmp_path):
    items = parse_import(json.dumps(BROWSER_HAR).encode())
    assert import_into(tmp_path / "s.db", items) == (2, 0)
    with Store(tmp_path / "s.db") as store:
        first = store.get(1)
        assert first.method == "POST" and first.path == "/hooks/stripe" and first.query == "attempt=2"
        assert first.body == b'{"id":"evt_1"}' and first.headers.get("host") == "api.example.com"
        assert ":authority" not in [k for k, _ in first.headers]
        assert first.received_at == "2026-11-28T09:00:01.250000Z" and first.source == "import"
        [attempt] = store.attempts(1)
        assert attempt.response.status == 200 and attempt.response.body == b'{"ok":true}'
        assert store.get(2).method == "GET" and store.attempts(2) == []


def test_malformed_imports_are_clear_errors():
    with pytest.raises(UsageError, match="not JSON"):
        parse_import(b"\xff not json")
    with pytest.raises(UsageError, match="malformed"):
        parse_import(json.dumps({"log": {"entries": [{"request": {}}]}}).encode())
    with pytest.raises(UsageError, match="not a delivery"):
        parse_import(b'[{"nothing": 1}]')


def test_redaction_masks_secrets_and_says_what():
    delivery = make_delivery(query="token=abc&page=2", headers=[("Authorization", "Bearer s3cret"), ("Stripe-Signature", "t=1,v1=x")])
    masked, what = redact(delivery)
    assert masked.headers.get("authorization") == "REDACTED" and masked.query == "token=REDACTED&page=2"
    assert what == ["header Authorization", "header Stripe-Signature", "query token"]
    assert delivery.headers.get("authorization") == "Bearer s3cret"  # the original is untouched
    har, said = export([ExportItem(delivery, [])], "har")
    assert "s3cret" not in har and said
    curl, said = export([ExportItem(delivery, [])], "curl")
    assert "s3cret" in curl and not said  # curl is for replaying: off by default


def test_raw_is_the_request_as_it_arrived():
    delivery = make_delivery(b"hello", path="/p", query="q=1", headers=[("Host", "h"), ("Transfer-Encoding", "chunked")])
    delivery.trailers = Headers([("X-Sig", "abc"), ("x-sig", "def")])
    raw = render_raw([ExportItem(delivery, [])])
    assert raw.startswith(b"POST /p?q=1 HTTP/1.1\r\n")
    assert raw.endswith(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sig: abc\r\nx-sig: def\r\n\r\n")
    plain = make_delivery(b"hello", headers=[("Content-Length", "5")])
    assert render_raw([ExportItem(plain, [])]).endswith(b"Content-Length: 5\r\n\r\nhello")


@pytest.mark.parametrize("name", ["binary", "invalid_utf8", "nul", "quotes_and_shell", "json", "empty"])
async def test_the_curl_command_delivers_identical_bytes(receiver, store_path, name):
    url, _ = receiver
    items = items_for(name)
    command, _ = export(items, "curl", to=url + "/")
    # async subprocess: the receiver answering curl runs in this test's event loop
    proc = await asyncio.create_subprocess_exec("bash", "-c", command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr
    with Store(store_path) as store:
        got = store.get(1)
    original = items[0].delivery
    assert got.body == original.body
    assert got.path == original.path and got.query == original.query
    assert got.method == original.method
    assert "user-agent" not in got.headers  # curl's own headers are suppressed
    assert got.headers.get("content-type") == original.headers.get("content-type")


def test_configured_redaction_adds_headers_query_keys_and_json_paths():

    rules = Redaction.from_config({"headers": ["X-Internal-Key"], "query": ["session"],
                                   "json": ["$.data.object.customer_email", "$.items[0]"]})
    delivery = make_delivery(b'{"data":{"object":{"customer_email":"ada@example.com","amount":1}},"items":["x","y"]}',
                             query="session=s1&page=2", headers=[("X-Internal-Key", "k"), ("Content-Length", "90")])
    masked, what = redact(delivery, rules)
    assert masked.headers.get("x-internal-key") == "REDACTED" and masked.query == "session=REDACTED&page=2"
    assert json.loads(masked.body) == {"data": {"object": {"customer_email": "REDACTED", "amount": 1}}, "items": ["REDACTED", "y"]}
    assert masked.headers.get("content-length") == str(len(masked.body))
    assert what == ["header X-Internal-Key", "query session", "body $.data.object.customer_email", "body $.items[0]"]
    untouched, nothing = redact(make_delivery(b"not json"), rules)
    assert untouched.body == b"not json" and nothing == []
    with pytest.raises(UsageError):
        Redaction.from_config({"json": ["data.no.dollar"]})


def test_exported_commands_print_no_raw_control_bytes_and_keep_the_query_literal():
    delivery = make_delivery(b"\x1b]8;;http://x\x1b\\body\x1b[2J", content_type="text/plain",
                             headers=[("Host", "hooks.example"), ("X-Title", "\x1b]0;owned\x07")], query="f[a]={b}")
    delivery.seq = 1
    for fmt in ("curl", "httpie"):
        text, _ = export([ExportItem(delivery, [])], fmt)
        assert not [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0], fmt
    curl, _ = export([ExportItem(delivery, [])], "curl")
    assert "--globoff" in curl and "f[a]={b}" in curl
