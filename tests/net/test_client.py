import asyncio

import pytest

from hookinspect.net.client import HTTPClient, HTTPClientError


async def test_a_self_signed_certificate_is_a_tls_error_unless_insecure(tls_server):
    client = HTTPClient(timeout=5)
    with pytest.raises(HTTPClientError) as info:
        await client.request("POST", tls_server, [(b"Host", b"127.0.0.1")], b"{}", 1024)
    assert info.value.kind == "tls" and "certificate" in str(info.value).lower()
    await client.aclose()
    insecure = HTTPClient(timeout=5, verify_tls=False)
    response = await insecure.request("POST", tls_server, [(b"Host", b"127.0.0.1")], b"{}", 1024)
    assert response.status == 200 and response.body == b"secure"
    await insecure.aclose()


async def test_a_kept_alive_connection_the_server_closed_is_retried_once(target):
    client = HTTPClient(timeout=5)
    host = target.url.removeprefix("http://").encode()
    first = await client.request("POST", target.url + "/a", [(b"Host", host)], b"1", 1024)
    assert first.status == 200
    await target.runner.shutdown()  # closes idle keep-alive connections
    await target.runner.cleanup()
    await target.start(int(target.url.rsplit(":", 1)[1]))
    second = await client.request("POST", target.url + "/b", [(b"Host", host)], b"2", 1024)
    assert second.status == 200 and [r["body"] for r in target.received] == [b"1", b"2"]
    await client.aclose()


async def test_headers_are_sent_exactly_as_given(target):
    client = HTTPClient(timeout=5)
    headers = [(b"Host", b"x"), (b"X-Dup", b"1"), (b"x-dup", b"2"), (b"X-Raw", b"caf\xe9"), (b"Content-Length", b"2")]
    await client.request("PUT", target.url + "/h?q=1", headers, b"{}", 1024)
    await client.aclose()
    got = target.received[0]
    assert got["method"] == "PUT" and got["path_qs"] == "/h?q=1"
    assert [(k, v) for k, v in got["headers"]] == headers


async def test_a_timeout_is_a_timeout(target):
    target.delay = 2
    client = HTTPClient(timeout=0.2)
    with pytest.raises(HTTPClientError) as info:
        await client.request("POST", target.url + "/", [(b"Host", b"x")], b"", 1024)
    assert info.value.kind == "timeout"
    await client.aclose()
    await asyncio.sleep(0)
