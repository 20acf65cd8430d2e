"""The README's deploy recipe, run on loopback: Redis primary and replica and three Sentinels
from its configuration blocks, the relay from its systemd unit's ExecStart and environment,
nginx terminating TLS from its server block. Ports, addresses and paths are swapped for free
ports and temporary files; nothing else is changed. A laptop subscribes and a sender posts
through nginx, /metrics answers only with the token, and the unit's stop signal drains the
relay within its TimeoutStopSec."""

import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.factories import (
    free_port,
    hookinspect_cmd,
    read_until,
    readme_block,
    stop_process,
    store_count,
    wait_until,
)
from tests.redis_servers import pings, redis_binary, replicas_in_sync
from tests.tunnel import STARTED, start_listen_tracked, stop_leftover_processes  # noqa: F401


def recipe_block(name: str) -> str:
    return readme_block(f"deploy: {name}")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "relay.pem", directory / "relay.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=relay.example.com",
                    "-addext", "subjectAltName=DNS:relay.example.com,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in reversed(started):
        stop_process(proc)


def test_the_deploy_recipe_runs_as_written(tmp_path, processes):
    missing = [name for name in ("redis-server", "nginx", "openssl") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install redis-server nginx openssl)")
    # Redis: the primary, then a replica with the `replicaof` line in effect.
    primary_port, replica_port = free_port(), free_port()
    for name, port, replica in (("primary", primary_port, False), ("replica", replica_port, True)):
        config = recipe_block("redis.conf").replace("port 6379", f"port {port}")
        if replica:
            config = config.replace("# replicaof 10.0.0.1 6379", f"replicaof 127.0.0.1 {primary_port}")
        directory = tmp_path / name
        directory.mkdir()
        (directory / "redis.conf").write_text(config + f"bind 127.0.0.1\ndir {directory}\nlogfile {directory}/log\n")
        processes.append(subprocess.Popen([redis_binary(), str(directory / "redis.conf")]))
        wait_until(lambda port=port: pings(port), 15, f"the {name} Redis")
    wait_until(lambda: replicas_in_sync(primary_port) == 1, 20, "the replica in sync")
    # Three Sentinels.
    sentinel_ports = [free_port() for _ in range(3)]
    sentinel = redis_binary("redis-sentinel")
    for index, port in enumerate(sentinel_ports):
        directory = tmp_path / f"sentinel{index}"
        directory.mkdir()
        config = (recipe_block("sentinel.conf").replace("port 26379", f"port {port}")
                  .replace("10.0.0.1 6379", f"127.0.0.1 {primary_port}"))
        (directory / "sentinel.conf").write_text(config + f"bind 127.0.0.1\ndir {directory}\nlogfile {directory}/log\n")
        argv = [sentinel, str(directory / "sentinel.conf")] if sentinel else [redis_binary(), str(directory / "sentinel.conf"), "--sentinel"]
        processes.append(subprocess.Popen(argv))
    # The relay, as systemd would start it: ExecStart with the EnvironmentFile's variables.
    unit = recipe_block("hookinspect-relay.service")
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
    assert exec_start[:2] == ["/usr/local/bin/hookinspect", "relay"]
    relay_port = free_port()
    sentinels = ",".join(f"127.0.0.1:{port}" for port in sentinel_ports)
    args = [arg.replace("8080", str(relay_port)).replace("10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379", sentinels)
            for arg in exec_start[2:]]
    token = "metrics-token-from-the-env-file"
    relay = subprocess.Popen(hookinspect_cmd("relay", *args), env={**_env(), "HOOKINSPECT_METRICS_TOKEN": token},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(relay)
    read_until(relay.stderr, '"relay.started"', 30)
    # nginx in front, with a certificate made here.
    cert, key = self_signed_certificate(tmp_path)
    tls_port = free_port()
    server = (recipe_block("nginx.conf").replace("listen 443 ssl", f"listen 127.0.0.1:{tls_port} ssl")
              .replace("/etc/ssl/relay.example.com.pem", str(cert)).replace("/etc/ssl/relay.example.com.key", str(key))
              .replace("127.0.0.1:8080", f"127.0.0.1:{relay_port}"))
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    (nginx_dir / "nginx.conf").write_text(
        f"daemon off;\npid {nginx_dir}/nginx.pid;\nerror_log {nginx_dir}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {nginx_dir};\nproxy_temp_path {nginx_dir};\n{server}}}\n")
    processes.append(subprocess.Popen(["nginx", "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf")]))
    public = f"https://127.0.0.1:{tls_port}"
    tls = httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=10)
    wait_until(lambda: _answers(tls, f"{public}/healthz"), 15, "nginx in front of the relay")
    # A channel, a laptop and a sender, all through nginx's TLS.
    made = subprocess.run(hookinspect_cmd("channel", "new", "--relay", public, "--json"), capture_output=True, text=True,
                          env={**_env(), "SSL_CERT_FILE": str(cert)}, timeout=30)
    assert made.returncode == 0, made.stderr
    channel = json.loads(made.stdout)
    assert channel["url"].startswith(public + "/")  # the public URL, as nginx forwarded it
    store = tmp_path / "laptop.db"
    start_listen_tracked(store, "--source", channel["url"], "--token", channel["token"],
                         env={"SSL_CERT_FILE": str(cert)})
    wait_until(lambda: "hookinspect_relay_subscribers 1.0" in _metrics(tls, public, token), 20, "the laptop subscribed")
    for n in range(20):
        assert tls.post(channel["url"], content=f'{{"n":{n}}}'.encode()).status_code == 200
    wait_until(lambda: store_count(store) == 20, 20, "20 deliveries at the laptop through TLS")
    assert tls.get(f"{public}/metrics").status_code == 401  # not without the token
    assert 'hookinspect_relay_requests_total{outcome="accepted"} 20.0' in _metrics(tls, public, token)
    # systemctl stop: the unit's KillSignal, and the relay is gone within TimeoutStopSec.
    kill_signal = re.search(r"^KillSignal=(\w+)$", unit, re.M).group(1)
    stop_seconds = float(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    asked = time.monotonic()
    relay.send_signal(getattr(signal, kill_signal))
    assert relay.wait(timeout=stop_seconds) == 0
    assert time.monotonic() - asked < stop_seconds
    tls.close()


def _env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("HOOKINSPECT_")}


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _metrics(client: httpx.Client, public: str, token: str) -> str:
    return client.get(f"{public}/metrics", headers={"Authorization": f"Bearer {token}"}).text
