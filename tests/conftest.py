from __future__ import annotations

from pathlib import Path

import pytest

from hookinspect.receiver import ReceiverSettings, create_app, start_server
from hookinspect.store.sqlite import Store
from tests.factories import RecordingTarget


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(store_path: Path):
    with Store(store_path) as opened:
        yield opened


@pytest.fixture
async def receiver(store_path: Path):
    """A real receiver on a loopback port; yields (base_url, settings) and stops it after."""
    settings = ReceiverSettings()
    runner, urls = await start_server(create_app(store_path, settings), "127.0.0.1", 0)
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
