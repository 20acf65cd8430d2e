from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from hookinspect.intake.receiver import ReceiverSettings, create_app, start_server
from hookinspect.store.sqlite import Store
from hookinspect.workspace import Workspace
from tests.factories import RecordingTarget


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(store_path: Path):
    with Store(store_path) as opened:
        yield opened


@pytest.fixture
def workspace(store_path: Path):
    with Workspace(store_path, create=True) as opened:
        yield opened


@pytest.fixture
async def receiver(workspace: Workspace):
    """A real receiver on a loopback port; yields (base_url, settings) and stops it after."""
    settings = ReceiverSettings()
    runner, urls = await start_server(create_app(workspace, settings), "127.0.0.1", 0)
    try:
        yield urls[0], settings
    finally:
        await runner.cleanup()


@pytest.fixture
async def target():
    server = await RecordingTarget().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def tls_server(tmp_path):
    """An https server on loopback with a self-signed certificate made by openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(request):
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"
    await runner.cleanup()


@pytest.fixture
def small_filesystem(tmp_path: Path):
    """A real 1 MiB filesystem (tmpfs) at tmp_path/small, to fill up; unmounted after the test."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root: " + (result.stderr.strip() or "mount failed"))
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
