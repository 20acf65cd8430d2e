"""Test deliveries and loopback servers, in one place."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

from hookinspect.model import Attempt, Delivery, ExportItem, Headers, Response, SentRequest


def make_delivery(
    body: bytes = b'{"type":"payment_intent.succeeded","data":{"object":{"amount":1200}}}',
    *,
    method: str = "POST",
    path: str = "/stripe/webhook",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    content_type: str | None = "application/json",
    **fields,
) -> Delivery:
    pairs = list(headers or [])
    if content_type and not any(k.lower() == "content-type" for k, _ in pairs):
        pairs.insert(0, ("Content-Type", content_type))
    return Delivery(method=method, path=path, query=query, headers=Headers(pairs), body=body,
                    remote_addr="127.0.0.1", **fields)


def seed(store_path: Path, *deliveries: Delivery) -> None:
    """Store these deliveries in the store file (made if need be), in order."""
    from hookinspect.store.sqlite import Store

    with Store(store_path) as store:
        for delivery in deliveries:
            store.insert_delivery(delivery)


def make_attempt(delivery_seq: int, status: int | None = 200, *, error_kind: str | None = None,
                 body: bytes = b'{"ok":true}', target: str = "http://127.0.0.1:9/hooks") -> Attempt:
    response = None if status is None else Response(status=status, headers=Headers([("Content-Type", "application/json")]), body=body)
    return Attempt(
        delivery_seq=delivery_seq, kind="replay", target_url=target,
        request=SentRequest(method="POST", url=target, headers=Headers([("Content-Type", "application/json")]), body=b"{}"),
        response=response, latency_ms=1.5, error_kind=error_kind,
        error_message=None if error_kind is None else "connection refused",
    )


# How often a wait looks again. Every wait has a deadline and waits for a condition, never
# for a fixed time: a fixed sleep passes on a quiet laptop and fails on a busy CI machine.
POLL_INTERVAL = 0.02


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "the condition") -> None:
    """Until `predicate()` is true; after `timeout` seconds, fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(POLL_INTERVAL)


async def await_until(predicate: Callable[[], object], timeout: float = 15.0, what: str = "the condition") -> None:
    """`wait_until` for async tests: the event loop keeps running while it waits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(POLL_INTERVAL)


def store_count(path: Path, table: str = "deliveries", state: str | None = None) -> int:
    """Rows in a table of a store file (of a queue `state`); 0 while the file does not exist yet."""
    if not path.exists():
        return 0
    from hookinspect.store.sqlite import Store

    with Store(path, create=False) as store:
        if state is None:
            return store.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return store.execute(f"SELECT count(*) FROM {table} WHERE state = ?", (state,)).fetchone()[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hookinspect_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hookinspect", *args]


def start_listen(store: Path, *args: str, port: int | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`hookinspect listen` as a real subprocess (with `env` added to the environment); returns it
    and its base URL once it answers."""
    port = port or free_port()
    proc = subprocess.Popen(
        hookinspect_cmd("listen", "--port", str(port), "--store", str(store), *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd or store.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc)
    return proc, url


def wait_until_up(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with socket.create_connection((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(answers, timeout, f"{url} answering")


def read_until(stream, text: str, timeout: float = 15.0) -> str:
    """What a child process's pipe says up to and including the first line containing `text`."""
    import queue
    import threading

    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        # It stops reading at the line awaited: the rest of the pipe is the caller's (a later
        # communicate() reading the same stream from another thread broke the buffered reader).
        for line in iter(stream.readline, b""):
            lines.put(line)
            if text in line.decode(errors="replace"):
                return

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic())).decode(errors="replace")
        except queue.Empty:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} not said within {timeout} s; said: {''.join(seen)!r}")


def stop_process(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


class RecordingTarget:
    """A loopback aiohttp server that records what it receives and answers as told."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        self.body = b'{"received":true}'
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.delay = 0.0
        self.handler: Callable[[web.Request, bytes], web.StreamResponse | Awaitable[web.StreamResponse]] | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append({"method": request.method, "path_qs": request.raw_path,
                              "headers": list(request.raw_headers), "body": body})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.handler is not None:
            result = self.handler(request, body)
            return await result if inspect.isawaitable(result) else result
        return web.Response(status=self.status, body=self.body, headers=self.headers)

    async def start(self, port: int = 0) -> RecordingTarget:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def post(url: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, **kwargs)


def import_into(store: Path, items: list[ExportItem], annotate: Callable[[Delivery], None] | None = None) -> tuple[int, int]:
    """`hookinspect import` of `items` into the store file, through the recorder."""
    from hookinspect.intake.importing import import_deliveries
    from hookinspect.recorder import Recorder
    from hookinspect.workspace import Workspace

    with Workspace(store, create=True) as workspace:
        return asyncio.run(import_deliveries(Recorder(workspace, annotate=annotate), items))


# The signer's and a stranger's SendGrid keys: fixed numbers, so every test run signs alike.
SENDGRID_KEY_NUMBERS = (1234567, 7654321)


def sendgrid_key(number: int):  # noqa: ANN201 - (the EC private key, its public key in base64 DER, its PEM)
    """A SendGrid Event Webhook key pair (ECDSA P-256) derived from `number`."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.derive_private_key(number, ec.SECP256R1())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return private, public, pem


def fill_disk(directory: Path) -> Path:
    """Fill the filesystem holding `directory` (a small tmpfs of a test) to the last byte; the
    file that does it, to unlink when there is to be room again."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(64 * 1024))
    except OSError:  # no space left: full
        pass
    finally:
        os.close(fd)
    return filler


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The fenced block after `<!-- marker -->` in the README: what a test runs as written."""
    import re
    found = re.search(rf"<!-- {re.escape(marker)} -->\n```\w*\n(.*?)```", README.read_text(), re.S)
    assert found, f"the README has no block marked {marker}"
    return found.group(1)
