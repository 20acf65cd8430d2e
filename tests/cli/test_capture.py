import asyncio
import json
import signal
import subprocess
import time

import httpx

from hookinspect.store.sqlite import Store
from tests.factories import free_port, hookinspect_cmd, start_listen, stop_process


async def test_kill_9_mid_load_loses_no_acknowledged_delivery(tmp_path):
    store_path = tmp_path / "store.db"
    proc, url = start_listen(store_path, "--quiet")
    acknowledged: set[str] = set()
    limits = httpx.Limits(max_connections=64)

    async def send(client: httpx.AsyncClient, i: int) -> None:
        marker = f"req-{i:04d}"
        try:
            response = await client.post(f"{url}/load/{marker}", content=json.dumps({"i": i, "pad": "x" * 2000}))
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            acknowledged.add(marker)

    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        tasks = [asyncio.create_task(send(client, i)) for i in range(600)]
        while len(acknowledged) < 150:
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        await asyncio.gather(*tasks)
    proc.wait(timeout=10)
    with Store(store_path, create=False) as store:
        stored = {row.path.rsplit("/", 1)[1] for row in store.list(limit=None)}
    assert len(acknowledged) >= 150
    assert acknowledged <= stored, f"lost {len(acknowledged - stored)} acknowledged deliveries"


def test_listen_prints_a_line_per_delivery_and_escapes_hostile_paths(tmp_path):
    proc, url = start_listen(tmp_path / "store.db")
    try:
        httpx.post(url + "/stripe/webhook", content=b'{"type":"x"}', headers={"Content-Type": "application/json"})
        httpx.post(url + "/%1b%5b31mred", content=b"\x1b[31m")
        time.sleep(0.3)
    finally:
        out, err = stop_process(proc)
    assert "listening on http://127.0.0.1:" in err
    assert "#1" in out and "/stripe/webhook" in out and "application/json" in out
    assert "#2" in out and "\x1b" not in out


def test_a_public_bind_warns_loudly(tmp_path):
    port = free_port()
    proc = subprocess.Popen(hookinspect_cmd("listen", "--host", "0.0.0.0", "--port", str(port), "--store", str(tmp_path / "s.db")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)
    _, err = stop_process(proc)
    assert "warning: listening on 0.0.0.0" in err


def test_a_bad_store_fails_before_binding_with_one_line(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("not a store")
    result = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(bad)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "not a hookinspect store" in result.stderr
    assert bad.read_text() == "not a store"


def test_a_port_in_use_is_exit_4(tmp_path):
    proc, url = start_listen(tmp_path / "a.db")
    try:
        port = url.rsplit(":", 1)[1]
        result = subprocess.run(hookinspect_cmd("listen", "--port", port, "--store", str(tmp_path / "b.db")),
                                capture_output=True, text=True, timeout=30)
    finally:
        stop_process(proc)
    assert result.returncode == 4 and "cannot listen on" in result.stderr and "Traceback" not in result.stderr


def test_mock_response_flags(tmp_path):
    body_file = tmp_path / "answer.json"
    body_file.write_text('{"mocked":true}')
    proc, url = start_listen(tmp_path / "store.db", "--status", "201", "--response-body", f"@{body_file}",
                             "-H", "Content-Type: application/json", "-H", "X-Mock: yes")
    try:
        response = httpx.post(url + "/m", content=b"{}")
    finally:
        stop_process(proc)
    assert response.status_code == 201 and response.json() == {"mocked": True}
    assert response.headers["x-mock"] == "yes"
