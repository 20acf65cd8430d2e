"""ASGIRecorder: records the webhooks an ASGI app (Starlette, FastAPI, Django's ASGI, any)
receives, and its answers, without changing either or making the app wait.

ASGI servers hand over header names lower-cased (the spec says so); their order, duplicates
and values are kept, and the body is recorded as the app reads it, chunk by chunk.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hookinspect.record.exchange import Exchange
from hookinspect.record.writer_process import open_sink

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIRecorder:
    """`app = ASGIRecorder(app, store="webhooks.db")`; with no store or `record_to`, the
    environment decides (HOOKINSPECT_RECORD), and without it the app runs as it is."""

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self.settings, self.sink = open_sink(options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sink = self.sink
        if sink is None or scope["type"] != "http" or not self.settings.selects(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        exchange = _exchange(scope)
        max_body, max_answer = self.settings.max_body, self.settings.max_answer

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.request_body.add(message.get("body", b""), max_body)
            return message

        async def send_and_keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.answer_headers = list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                exchange.answer.add(message.get("body", b""), max_answer)
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive_and_keep, send_and_keep)
        except BaseException as exc:
            exchange.error = f"the app raised {type(exc).__name__}"
            raise
        finally:
            exchange.latency_ms = (time.perf_counter() - started) * 1000
            sink.finish(exchange)

    def close(self) -> None:
        """Write what is still queued (a server's shutdown calls this through lifespan or atexit)."""
        if self.sink is not None:
            self.sink.close()


def _exchange(scope: Scope) -> Exchange:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    raw_path = raw_path.split(b"?", 1)[0]  # some servers leave the query on it
    path = raw_path.decode("utf-8", "surrogateescape")
    query = scope.get("query_string", b"").decode("utf-8", "surrogateescape")
    headers = list(scope.get("headers", ()))
    host = next((value.decode("latin-1") for name, value in headers if name == b"host"), None)
    if host is None and scope.get("server"):
        host = "{}:{}".format(*scope["server"])
    url = f"{scope.get('scheme', 'http')}://{host or 'localhost'}{path}" + (f"?{query}" if query else "")
    client = scope.get("client")
    return Exchange(method=scope["method"], path=path, query=query, url=url, headers=headers,
                    http_version=scope.get("http_version", "1.1"), remote=client[0] if client else None)
