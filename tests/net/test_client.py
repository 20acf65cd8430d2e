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


class CannedServer:
    """A loopback server that answers every request with the bytes given (an answer a real
    backend could send, odd ones included), and keeps what it was sent."""

    def __init__(self, answer: bytes, *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0

    async def __aenter__(self):
        async def serve(reader, writer):
            self.connections += 1
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    chunked = b"transfer-encoding: chunked" in head.lower()
                    body = await reader.readuntil(b"0\r\n\r\n") if chunked else await reader.readexactly(length)
                    self.requests.append(head + body)
                    writer.write(self.answer)
                    await writer.drain()
                    if self.close_after:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


async def send(url, method="POST", body=b"{}", headers=None, max_body=1 << 20):
    client = HTTPClient(timeout=5)
    try:
        return await client.request(method, url + "/h", headers or [(b"Host", b"x")], body, max_body), client
    finally:
        await client.aclose()


@pytest.mark.parametrize(("answer", "body"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", b"hello"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", b"ok"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
])
async def test_answers_are_read_whole_and_the_connection_kept(answer, body):
    async with CannedServer(answer) as server:
        client = HTTPClient(timeout=5)
        first = await client.request("POST", server.url + "/a", [(b"Host", b"x")], b"{}", 1024)
        second = await client.request("POST", server.url + "/b", [(b"Host", b"x")], b"{}", 1024)
        await client.aclose()
    assert first.body == second.body == body and first.http_version == "1.1"
    assert server.connections == 1  # kept alive


async def test_a_body_until_close_a_head_answer_and_duplicate_headers():
    async with CannedServer(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\n\r\nuntil the end", close_after=True) as server:
        response, _ = await send(server.url)
    assert response.body == b"until the end" and response.headers[:2] == [(b"X-A", b"1"), (b"x-a", b"2")]
    async with CannedServer(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n") as server:
        response, _ = await send(server.url, method="HEAD", body=b"")
    assert response.status == 200 and response.body == b""


async def test_a_body_over_the_limit_is_cut_and_marked():
    async with CannedServer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789") as server:
        response, _ = await send(server.url, max_body=4)
    assert response.body == b"0123" and response.truncated


@pytest.mark.parametrize(("answer", "kind"), [
    (b"not http at all\r\n\r\n", "protocol"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "reset"),
])
async def test_a_bad_or_cut_answer_is_one_line_of_its_kind(answer, kind):
    async with CannedServer(answer, close_after=True) as server:
        with pytest.raises(HTTPClientError) as info:
            await send(server.url)
    assert info.value.kind == kind and "\n" not in str(info.value)


async def test_a_chunked_request_is_framed_and_headers_that_cannot_be_sent_are_refused():
    async with CannedServer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as server:
        await send(server.url, body=b"abc", headers=[(b"Host", b"x"), (b"Transfer-Encoding", b"chunked")])
        assert server.requests[0].endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        for headers, said in [([(b"Host", b"x"), (b"X-Evil", b"a\r\nInjected: 1")], "illegal header value"),
                              ([(b"X-No-Host", b"1")], "Host"),
                              ([(b"Host", b"x"), (b"Content-Length", b"9")], "does not match")]:
            with pytest.raises(HTTPClientError) as info:
                await send(server.url, body=b"abc", headers=headers)
            assert info.value.kind == "protocol" and said in str(info.value)
        assert len(server.requests) == 1  # nothing that was refused reached the server
