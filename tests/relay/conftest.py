"""A real redis-server for the relay's shared storage: started on a free loopback port in a
temporary directory, stopped by its PID. Without Debian's redis-server the tests that need it
skip with one line (`.ci/run` installs it)."""

import shutil
import subprocess

import pytest

from tests.factories import free_port, stop_process, wait_until


@pytest.fixture
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    # appendfsync always: an event the relay acknowledged is on disk, as the README asks of operators.
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
                             "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
                             "--protected-mode", "yes", "--logfile", ""],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import redis

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {proc.stdout.read().decode(errors='replace')[-500:]}")
        try:
            return redis.Redis(port=port, socket_connect_timeout=0.2).ping()
        except redis.ConnectionError:
            return False
    try:
        wait_until(answers, 15, "redis-server answering PING")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
