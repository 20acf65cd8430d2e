"""WSGIRecorder: records the webhooks a WSGI app (Flask, Django, any) receives, and its
answers, without changing either or making the app wait.

WSGI gives headers as environ keys: names come back in their usual spelling (`X-Hub-Signature-256`)
in the order the server put them, and a header sent twice arrives joined with ", " by most
servers. The path is taken from REQUEST_URI or RAW_URI when the server keeps it (werkzeug,
gunicorn, uWSGI), so percent-encoding is as sent. The body is recorded as the app reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from hookinspect.record.exchange import Exchange
from hookinspect.record.writer_process import open_sink

StartResponse = Callable[..., Callable[[bytes], Any]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIRecorder:
    """`app.wsgi_app = WSGIRecorder(app.wsgi_app, store="webhooks.db")`; with no store or
    `record_to`, the environment decides (HOOKINSPECT_RECORD), and without it the app runs as it is."""

    def __init__(self, app: WSGIApp, **options: Any) -> None:
        self.app = app
        self.settings, self.sink = open_sink(options)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        sink = self.sink
        method = environ.get("REQUEST_METHOD", "GET")
        if sink is None or not self.settings.selects(method, environ.get("PATH_INFO", "") or "/"):
            return self.app(environ, start_response)
        exchange = _exchange(environ)
        environ["wsgi.input"] = _KeptInput(environ["wsgi.input"], exchange, self.settings.max_body)
        max_answer = self.settings.max_answer

        def start_and_keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            code, _, reason = status.partition(" ")
            exchange.status, exchange.reason = int(code), reason
            exchange.answer_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            write = start_response(status, headers, exc_info) if exc_info is not None else start_response(status, headers)

            def write_and_keep(data: bytes) -> Any:
                exchange.answer.add(data, max_answer)
                return write(data)
            return write_and_keep

        started = time.perf_counter()
        try:
            result = self.app(environ, start_and_keep)
        except BaseException as exc:
            exchange.error = f"the app raised {type(exc).__name__}"
            exchange.latency_ms = (time.perf_counter() - started) * 1000
            sink.finish(exchange)
            raise
        return _KeptAnswer(result, exchange, max_answer, started, sink.finish)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


class _KeptInput:
    """wsgi.input, keeping what the app reads."""

    def __init__(self, stream: Any, exchange: Exchange, limit: int) -> None:
        self._stream, self._exchange, self._limit = stream, exchange, limit

    def _kept(self, data: bytes) -> bytes:
        self._exchange.request_body.add(data, self._limit)
        return data

    def read(self, *size: int) -> bytes:
        return self._kept(self._stream.read(*size))

    def readline(self, *size: int) -> bytes:
        return self._kept(self._stream.readline(*size))

    def readlines(self, *hint: int) -> list[bytes]:
        return [self._kept(line) for line in self._stream.readlines(*hint)]

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            yield self._kept(line)


class _KeptAnswer:
    """The app's answer as the server iterates it, kept; recorded once the server closes it."""

    def __init__(self, result: Iterable[bytes], exchange: Exchange, limit: int, started: float,
                 finish: Callable[[Exchange], None]) -> None:
        self._result, self._exchange, self._limit = result, exchange, limit
        self._started, self._finish, self._finished = started, finish, False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            self._exchange.answer.add(chunk, self._limit)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            if not self._finished:
                self._finished = True
                self._exchange.latency_ms = (time.perf_counter() - self._started) * 1000
                self._finish(self._exchange)


# Header names by environ key, spelled once: every request of a sender brings the same ones.
# Bounded, since the keys are the sender's to choose.
_HEADER_NAMES: dict[str, bytes] = {}
_HEADER_NAMES_KEPT = 512


def _header_name(key: str) -> bytes:
    """`HTTP_X_HUB_SIGNATURE_256` -> `X-Hub-Signature-256`."""
    name = _HEADER_NAMES.get(key)
    if name is None:
        name = "-".join(part.capitalize() for part in key.removeprefix("HTTP_").split("_")).encode("latin-1")
        if len(_HEADER_NAMES) < _HEADER_NAMES_KEPT:
            _HEADER_NAMES[key] = name
    return name


def _exchange(environ: dict[str, Any]) -> Exchange:
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw and raw.startswith("/"):
        path, _, query = raw.partition("?")
    else:  # PATH_INFO is decoded (as latin-1 bytes): encode it again
        decoded = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
        path, query = quote(decoded or "/", safe="/:@!$&'()*+,;=-._~"), environ.get("QUERY_STRING", "")
    headers = [(_header_name(key), value.encode("latin-1")) for key, value in environ.items()
               if key.startswith("HTTP_") or (key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value)]
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")
    version = environ.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/")
    return Exchange(method=environ.get("REQUEST_METHOD", "GET"), path=path, query=query, url=url, headers=headers,
                    http_version=version, remote=environ.get("REMOTE_ADDR"))
