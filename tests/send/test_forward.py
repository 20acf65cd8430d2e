import gzip

import pytest
from aiohttp import web

from hookinspect.errors import UsageError
from hookinspect.formats.targets import target_url, validate_target
from hookinspect.send.forward import Forwarder, RequestEdits, build_request
from tests.factories import make_delivery


def test_target_url_rule():
    assert target_url("http://h:3000", "/stripe/hook", "a=1") == "http://h:3000/stripe/hook?a=1"
    assert target_url("http://h:3000/api/", "/stripe/hook", "") == "http://h:3000/api/stripe/hook"
    assert target_url("http://h:3000/webhooks", "/stripe/hook", "a=1") == "http://h:3000/webhooks?a=1"
    assert target_url("http://h/webhooks?k=v", "/x", "a=1") == "http://h/webhooks?k=v&a=1"


def test_bad_target_urls_are_usage_errors():
    for bad in ("notaurl", "ftp://h/x", "http://", "http://h:99999/"):
        with pytest.raises(UsageError):
            validate_target(bad)


def test_build_request_drops_hop_by_hop_rewrites_host_and_keeps_order():
    delivery = make_delivery(b"{}", headers=[("Host", "public.example"), ("X-A", "1"), ("Connection", "keep-alive"),
                                            ("Transfer-Encoding", "chunked"), ("X-A", "2"), ("Content-Length", "99")])
    request = build_request(delivery, "http://127.0.0.1:9/in")
    names = [k for k, _ in request.headers]
    assert names[:5] == ["Content-Type", "Host", "X-A", "X-A", "Content-Length"]  # Host stays where it was
    assert request.headers.get("host") == "127.0.0.1:9" and request.headers.get("content-length") == "2"
    assert "connection" not in request.headers and "transfer-encoding" not in request.headers
    assert request.headers.get("x-forwarded-host") == "public.example"
    assert request.headers.get("x-forwarded-for") == "127.0.0.1"


def test_edits_change_the_send_not_the_delivery():
    delivery = make_delivery(b'{"a":1}', headers=[("User-Agent", "stripe"), ("X-Keep", "1")])
    request = build_request(delivery, "http://h/", RequestEdits(set_headers=[("X-Debug", "1")], drop_headers=["user-agent"], body=b"{}"))
    assert request.body == b"{}" and request.headers.get("x-debug") == "1" and "user-agent" not in request.headers
    assert request.headers.get("content-length") == "2"
    assert delivery.body == b'{"a":1}' and delivery.headers.get("user-agent") == "stripe"


async def test_send_is_byte_exact_and_adds_no_client_headers(target):
    body = gzip.compress(b'{"x":"\xc3\xa9"}') + b"\xff"
    delivery = make_delivery(body, query="a=1&a=2", headers=[("Content-Encoding", "gzip"), ("X-Dup", "1"), ("X-Dup", "2"),
                                                             ("X-Raw", "caf\udce9")])
    delivery.seq = 1
    async with Forwarder() as forwarder:
        attempt = await forwarder.send(delivery, target.url)
    got = target.received[0]
    assert got["body"] == body and got["path_qs"] == "/stripe/webhook?a=1&a=2"
    names = [k.decode() for k, _ in got["headers"]]
    assert "User-Agent" not in names and "Accept" not in names and "Accept-Encoding" not in names
    assert [v for k, v in got["headers"] if k.lower() == b"x-dup"] == [b"1", b"2"]
    assert (b"X-Raw", b"caf\xe9") in got["headers"]
    assert attempt.is_success and attempt.response.body == b'{"received":true}'
    assert attempt.request.body == body and attempt.latency_ms > 0


async def test_an_error_status_is_a_response_and_redirects_are_not_followed(target):
    target.status, target.body, target.headers = 302, b"", {"Location": "http://127.0.0.1:1/elsewhere"}
    async with Forwarder() as forwarder:
        attempt = await forwarder.send(make_delivery(), target.url)
    assert attempt.response.status == 302 and len(target.received) == 1 and attempt.error_kind is None


async def test_a_target_that_is_down_is_a_connect_error_not_a_fake_response():
    async with Forwarder() as forwarder:
        attempt = await forwarder.send(make_delivery(), "http://127.0.0.1:1/")
    assert attempt.response is None and attempt.error_kind == "connect" and "connection refused" in attempt.error_message


async def test_a_hanging_target_times_out(target):
    target.delay = 3
    async with Forwarder(timeout=0.3) as forwarder:
        attempt = await forwarder.send(make_delivery(), target.url)
    assert attempt.error_kind == "timeout"


async def test_a_connection_closed_mid_response_is_a_reset(target):
    async def half_response(request, body):
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"partial")
        request.transport.close()
        return response

    target.handler = half_response
    async with Forwarder() as forwarder:
        attempt = await forwarder.send(make_delivery(), target.url)
    assert attempt.response is None and attempt.error_kind == "reset"


async def test_a_huge_response_is_stored_whole_up_to_the_cap_and_marked(target):
    target.body = b"z" * (20 * 1024 * 1024)
    async with Forwarder() as forwarder:
        whole = await forwarder.send(make_delivery(), target.url)
    async with Forwarder(max_response_body=1024) as forwarder:
        capped = await forwarder.send(make_delivery(), target.url)
    assert len(whole.response.body) == 20 * 1024 * 1024 and not whole.response_truncated
    assert len(capped.response.body) == 1024 and capped.response_truncated and "not read" in capped.error_message


async def test_slow_target_latency_is_measured(target):
    target.delay = 0.3
    async with Forwarder() as forwarder:
        attempt = await forwarder.send(make_delivery(), target.url)
    assert attempt.latency_ms >= 290


async def test_a_secret_that_cannot_sign_leaves_the_send_undone_with_one_line(target):
    from hookinspect.formats.samples import build_sample_request, find_sample
    from hookinspect.signing.registry import Secrets, resigner_for

    request = build_sample_request(find_sample("adyen/AUTHORISATION"), "http://127.0.0.1:8787/adyen",
                                   "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")
    delivery = make_delivery(request.body, path="/adyen", headers=request.headers.pairs())
    secrets = Secrets()
    secrets.add("adyen", "not-a-hex-key")  # Adyen's HMAC keys are hex
    async with Forwarder() as forwarder:
        attempt = await forwarder.send(delivery, target.url, resign=resigner_for(delivery, secrets))
    assert attempt.response is None and attempt.error_kind == "other"
    assert attempt.error_message.startswith("cannot sign as adyen with the secret given")
    assert "not-a-hex-key" not in attempt.error_message and target.received == []  # not sent with a stale signature
