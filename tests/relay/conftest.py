"""A real redis-server for the relay's shared storage: started on a free loopback port in a
temporary directory, stopped by its PID. Without Debian's redis-server the tests that need it
skip with one line (`.ci/run` installs it)."""

import pytest

from tests.factories import stop_process
from tests.redis_servers import redis_binary, start_redis_server


@pytest.fixture
def redis_url(tmp_path):
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    proc, port = start_redis_server(tmp_path / "redis")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
