import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hookinspect.store.sqlite import Store
from tests.factories import (
    RecordingTarget,
    await_until,
    free_port,
    hookinspect_cmd,
    make_delivery,
    read_until,
    start_listen,
    stop_process,
    store_count,
    wait_until,
)


@pytest.mark.parametrize("flags", [[], ["--workers", "2"], ["--ack", "--forward-to", "http://127.0.0.1:9/down"]],
                         ids=["one-process", "workers", "ack"])
async def test_kill_9_mid_load_loses_no_acknowledged_delivery(tmp_path, flags):
    if "--workers" in flags and not sys.platform.startswith("linux"):
        pytest.skip("--workers needs Linux")
    store_path = tmp_path / "store.db"
    proc, url = start_listen(store_path, "--quiet", *flags)
    children = child_pids(proc.pid, 1) if "--workers" in flags else []
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
        await await_until(lambda: len(acknowledged) >= 150, timeout=60, what="150 acknowledged deliveries")
        for pid in [proc.pid, *children]:  # every process at once, as a crash of the machine's processes would
            os.kill(pid, signal.SIGKILL)
        await asyncio.gather(*tasks)
    proc.wait(timeout=10)
    with Store(store_path, create=False) as store:
        stored = {row.path.rsplit("/", 1)[1] for row in store.list(limit=None)}
        queued = store.execute("SELECT count(DISTINCT delivery_seq) FROM forward_queue").fetchone()[0]
    assert len(acknowledged) >= 150
    assert acknowledged <= stored, f"lost {len(acknowledged - stored)} acknowledged deliveries"
    if "--ack" in flags:  # queued in the same transaction: an acknowledged delivery is never left unsent
        assert queued == len(stored)


def test_listen_prints_a_line_per_delivery_and_escapes_hostile_paths(tmp_path):
    proc, url = start_listen(tmp_path / "store.db")
    try:
        httpx.post(url + "/stripe/webhook", content=b'{"type":"x"}', headers={"Content-Type": "application/json"})
        httpx.post(url + "/%1b%5b31mred", content=b"\x1b[31m")
    finally:  # a clean stop prints every line still waiting for the terminal
        out, err = stop_process(proc)
    assert "listening on http://127.0.0.1:" in err
    assert "#1" in out and "/stripe/webhook" in out and "application/json" in out
    assert "#2" in out and "\x1b" not in out


def test_a_public_bind_warns_loudly(tmp_path):
    port = free_port()
    proc = subprocess.Popen(hookinspect_cmd("listen", "--host", "0.0.0.0", "--port", str(port), "--store", str(tmp_path / "s.db")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        said = read_until(proc.stderr, "listening on")
    finally:
        proc.terminate()
        proc.wait(10)
    assert "warning: listening on 0.0.0.0" in said


def test_a_bad_store_fails_before_binding_with_one_line(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("not a store")
    result = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(bad)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "not a hookinspect store" in result.stderr
    assert bad.read_text() == "not a store"


@pytest.mark.parametrize("running", [[], ["--workers", "2"]], ids=["one-process", "workers"])
def test_a_port_in_use_is_exit_4(tmp_path, running):
    if running and not sys.platform.startswith("linux"):
        pytest.skip("--workers needs Linux")
    proc, url = start_listen(tmp_path / "a.db", *running)
    try:
        port = url.rsplit(":", 1)[1]
        # Not even a second listen with workers may join the port (SO_REUSEPORT would let it).
        results = [subprocess.run(hookinspect_cmd("listen", "--port", port, "--store", str(tmp_path / "b.db"), *extra),
                                  capture_output=True, text=True, timeout=30) for extra in ([], ["--workers", "2"])]
    finally:
        stop_process(proc)
    for result in results:
        assert result.returncode == 4 and "cannot listen on" in result.stderr and "Traceback" not in result.stderr
        assert "pick another --port" in result.stderr


def test_an_address_this_machine_does_not_have_is_one_line_about_the_host(tmp_path):
    for host in ("999.1.1.1", "192.0.2.1"):  # not an address at all; TEST-NET-1, on no interface here
        result = subprocess.run(hookinspect_cmd("listen", "--host", host, "--port", "0", "--store", str(tmp_path / "s.db")),
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 4 and f"cannot listen on {host}:0" in result.stderr
        assert "check --host" in result.stderr and len(result.stderr.strip().splitlines()) == 1


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


workers_need_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers needs Linux")


@pytest.fixture
def start_workers(tmp_path):
    """`listen --workers` as a subprocess, stopped after the test even when an assertion failed."""
    started = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
        proc, url = start_listen(tmp_path / "store.db", *args)
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        if proc.poll() is None:
            stop_process(proc)


def child_pids(pid: int, count: int) -> list[int]:
    """The `count` children of `pid`: the first worker may answer while the next is still being started."""
    def children() -> list[int]:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    wait_until(lambda: len(children()) >= count, timeout=15, what=f"{count} workers of {pid}")
    return children()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def has_exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@workers_need_linux
async def test_workers_share_the_port_and_the_store_and_stop_together(tmp_path, start_workers):
    store_path = tmp_path / "store.db"
    proc, url = start_workers("--quiet", "--workers", "2")
    children = child_pids(proc.pid, 1)
    assert len(children) == 1
    worker_cpu = cpu_seconds(children[0])
    # A new connection per request: the kernel spreads connections, not requests, over the workers,
    # and a few long-lived ones could all land on one of them.
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32), timeout=20,
                                 headers={"Connection": "close"}) as client:
        responses = await asyncio.gather(*(client.post(f"{url}/w/{i}", content=b'{"i":%d}' % i) for i in range(600)))
    assert [r.status_code for r in responses] == [200] * 600
    # Numbers come from one store: unique and gapless across the two processes.
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 601))
    assert cpu_seconds(children[0]) - worker_cpu > 0.05, "the second worker took no part of the load"
    out, err = stop_process(proc)
    err = " ".join(err.split())  # rich wraps at the pipe's default width
    assert proc.returncode == 0 and "2 workers" in err and "stopped; every acknowledged delivery is in the store" in err
    assert has_exited(children[0])
    with Store(store_path, create=False) as store:
        assert store.count() == 600
        assert {d.path: d.body for d in (store.get(n) for n in range(1, 601))} == {f"/w/{i}": b'{"i":%d}' % i for i in range(600)}


@workers_need_linux
def test_workers_stop_when_listen_is_killed(start_workers):
    proc, _url = start_workers("--quiet", "--workers", "3")
    children = child_pids(proc.pid, 2)
    assert len(children) == 2
    proc.kill()
    proc.wait()
    wait_until(lambda: all(has_exited(pid) for pid in children), timeout=10, what="every worker exiting after listen")


@workers_need_linux
def test_workers_print_live_lines_and_refuse_one_process_modes(tmp_path, start_workers):
    proc, url = start_workers("--workers", "2")
    try:
        for i in range(20):
            httpx.post(f"{url}/line/{i}", content=b"{}")
    finally:  # a clean stop prints every line still waiting for the terminal
        out, _err = stop_process(proc)
    assert sorted(int(line.split("/line/")[1].split()[0]) for line in out.splitlines() if "/line/" in line) == list(range(20))
    for flags in (["--source", "http://127.0.0.1:9/c/x"], ["--ui"]):
        result = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(tmp_path / "s.db"),
                                                "--workers", "2", *flags), capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and result.stderr.count("\n") <= 2 and "cannot be combined with --workers" in result.stderr
    # A slip of the keyboard (or a config file) must not fork a process per digit's worth.
    many = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(tmp_path / "s.db"),
                                          "--workers", "9" * 23), capture_output=True, text=True, timeout=30)
    assert many.returncode == 2 and "more than this machine can use" in many.stderr and many.stderr.count("\n") == 1


@workers_need_linux
def test_a_worker_that_dies_is_reported_and_the_others_keep_serving(tmp_path, start_workers):
    proc, url = start_workers("--quiet", "--workers", "2")
    (child,) = child_pids(proc.pid, 1)
    os.kill(child, signal.SIGKILL)
    said = read_until(proc.stderr, "still serve")  # its socket is closed with it: the kernel serves the rest
    answers = [httpx.post(f"{url}/after/{i}", content=b"{}").status_code for i in range(20)]
    stop_process(proc)
    err = " ".join(said.split())
    assert answers == [200] * 20
    assert f"worker {child} ended (killed by signal 9); 1 of 2 processes still serve" in err
    assert proc.returncode == 0
    with Store(tmp_path / "store.db", create=False) as store:
        assert store.count() == 20


@workers_need_linux
async def test_ack_mode_with_workers_forwards_every_delivery_once(tmp_path, start_workers):
    port = free_port()
    target = await RecordingTarget().start(port)
    try:
        proc, url = await asyncio.to_thread(start_workers, "--quiet", "--workers", "2", "--ack",
                                            "--forward-to", f"http://127.0.0.1:{port}/in")
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16), timeout=20) as client:
            answers = await asyncio.gather(*(client.post(f"{url}/a/{i}", content=b"%d" % i) for i in range(100)))
        assert [a.status_code for a in answers] == [200] * 100  # acknowledged at once, by whichever process
        # Only the first process works the queue: what the other one queued goes out too, once.
        store_path = tmp_path / "store.db"
        await await_until(lambda: store_count(store_path, "forward_queue", state="done") == 100, timeout=30,
                          what="100 queued deliveries sent")
        _out, _err = await asyncio.to_thread(stop_process, proc)
    finally:
        await target.stop()
    assert sorted(int(r["body"]) for r in target.received) == list(range(100))
    with Store(store_path, create=False) as store:
        assert store.count() == 100 and store_count(store_path, "attempts") == 100  # each sent once
        assert sum(len(store.attempts(n)) for n in range(1, 101)) == 100


async def test_a_full_disk_loses_nothing_acknowledged_hangs_nothing_and_recovers(small_filesystem):
    filler = small_filesystem / "filler.bin"
    filler.write_bytes(b"\0" * 300_000)  # freed later, as a user freeing space would
    store = small_filesystem / "store.db"
    listen, url = start_listen(store, cwd=small_filesystem.parent)
    acknowledged: list[bytes] = []
    refused: list[httpx.Response] = []
    slowest = 0.0
    try:
        async with httpx.AsyncClient(timeout=10) as client:

            async def post(body: bytes) -> httpx.Response:
                nonlocal slowest
                started = time.monotonic()
                answer = await client.post(url + "/hook", content=body)
                slowest = max(slowest, time.monotonic() - started)
                if answer.status_code == 200:
                    acknowledged.append(body)
                return answer

            for n in range(400):  # bounded: ~60 bodies of 16 KB fill what is left of 1 MiB
                answer = await post(json.dumps({"n": n, "pad": "x" * 16_000}).encode())
                if answer.status_code != 200:
                    refused.append(answer)
                    if len(refused) >= 5:
                        break
            assert len(refused) >= 5, "the small filesystem never filled up"
            filler.unlink()  # space comes back: no restart
            deadline = time.monotonic() + 15
            resumed = None
            while resumed is None or resumed.status_code != 200:
                assert time.monotonic() < deadline, "capture did not resume after space was freed"
                resumed = await post(b'{"after":"space freed"}')
    finally:
        out, err = stop_process(listen)
    assert {r.status_code for r in refused} <= {507, 503}
    assert all(r.headers.get("Retry-After") for r in refused)
    assert slowest < 5.0, f"a request waited {slowest:.1f} s"
    with Store(store) as opened:
        stored = [opened.get(seq).body for seq in opened.seqs()]
    assert [b for b in acknowledged if b not in stored] == []  # 0 acknowledged deliveries lost
    assert out.count("NOT STORING") == 1 and "full" in out and out.count("deliveries are stored again") == 1


def test_a_second_listen_on_a_store_in_use_is_refused_naming_the_owner(tmp_path):
    store = tmp_path / "s.db"
    first, url = start_listen(store)
    try:
        httpx.post(url + "/one", content=b"{}")
        second = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(store)),
                                capture_output=True, text=True, timeout=30)
        ls = subprocess.run(hookinspect_cmd("ls", "--json", "--store", str(store)), capture_output=True, text=True, timeout=30)
    finally:
        stop_process(first)
    assert second.returncode == 3 and second.stderr.count("\n") == 1
    assert f"in use by another `hookinspect listen` (PID {first.pid})" in second.stderr
    assert ls.returncode == 0 and len(json.loads(ls.stdout)) == 1  # readers are never blocked
    again, _ = start_listen(store)  # the lock went with the first process
    stop_process(again)


def test_an_explicit_store_in_a_missing_directory_is_refused_and_nothing_is_created(tmp_path):
    typo = tmp_path / "typo" / "dir" / "x.db"
    result = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(typo)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "does not exist" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "typo").exists()


def test_the_default_store_is_created_private(tmp_path):
    proc, url = start_listen(tmp_path / "unused.db", cwd=tmp_path)
    stop_process(proc)
    default = subprocess.Popen(hookinspect_cmd("listen", "--port", str(free_port())), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(default.stderr, "listening on")
        folder = tmp_path / ".hookinspect"
        modes = {p.name: p.stat().st_mode & 0o777 for p in [folder, *folder.iterdir()] if not p.name.endswith(".lock")}
    finally:
        default.terminate()
        default.wait(10)
    assert modes.pop(".hookinspect") == 0o700
    assert modes and set(modes.values()) == {0o600}, modes  # store.db, -wal, -shm: they hold Authorization headers


def test_a_corrupt_store_is_refused_and_left_untouched(tmp_path):
    store = tmp_path / "s.db"
    with Store(store) as opened:
        opened.insert_deliveries([make_delivery(b"x" * 3000) for _ in range(50)])
    data = bytearray(store.read_bytes())
    data[4096 * 3:4096 * 5] = b"\xa5" * 8192  # damage pages, keep the header
    store.write_bytes(bytes(data))
    before = store.read_bytes()
    listen = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(store)),
                            capture_output=True, text=True, timeout=30)
    ls = subprocess.run(hookinspect_cmd("ls", "--store", str(store), "--limit", "100"), capture_output=True, text=True,
                        timeout=30)
    assert listen.returncode == 3 and "corrupt" in listen.stderr and listen.stderr.count("\n") == 1
    assert "Traceback" not in ls.stderr and ls.returncode in (0, 3)
    assert store.read_bytes() == before


def test_a_read_only_store_fails_at_start_with_one_line(small_filesystem):
    store = small_filesystem / "s.db"
    Store(store).close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    result = subprocess.run(hookinspect_cmd("listen", "--port", str(free_port()), "--store", str(store)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 3 and "read-only" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(("flag", "expected"), [([], 2), (["--durability", "process"], 1)])
def test_durability_chooses_fsync_at_commit(tmp_path, flag, expected):
    """synchronous=FULL (2) by default: acknowledged deliveries survive power loss; NORMAL (1) on request."""
    from hookinspect.workspace import Workspace

    durability = flag[1] if flag else "power"
    with Workspace(tmp_path / "s.db", create=True, durability=durability) as workspace:
        assert workspace.writer.submit(lambda store: store.execute("PRAGMA synchronous").fetchone()[0]).result() == expected
    bad = subprocess.run(hookinspect_cmd("listen", "--durability", "sometimes", "--store", str(tmp_path / "s.db")),
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "durability must be one of power, process" in bad.stderr


def listen_with_few_files(tmp_path, port, *extra):
    """`listen` allowed 96 open files, and 150 connections held open against it."""
    import resource
    import socket

    proc = subprocess.Popen(hookinspect_cmd("listen", "--port", str(port), "--store", str(tmp_path / "s.db"), *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96)))
    read_until(proc.stderr, "listening on")
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(150)]
    return proc, held


def test_running_out_of_file_descriptors_is_one_line_a_second_and_passes(tmp_path):
    """With a connection cap above what the descriptor limit allows (set by hand), running out still passes."""
    port = free_port()
    proc, held = listen_with_few_files(tmp_path, port, "-q", "--max-connections", "1000")
    try:
        said = read_until(proc.stderr, "out of file descriptors", timeout=20)
        for sock in held:
            sock.close()
        held = []

        def answers() -> bool:
            try:
                return httpx.post(f"http://127.0.0.1:{port}/after", content=b"{}", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=20, what="an answer once connections closed")
    finally:
        for sock in held:
            sock.close()
        _out, err = stop_process(proc)
    assert "ulimit -n" in said and "Traceback" not in said + err


def test_connections_past_the_descriptor_limit_make_room_instead_of_failing(tmp_path):
    """Held connections never lock a sender out: quiet ones are closed to make room.

    Known gap: 150 connections arriving at once still run a 96-file listen out of descriptors
    for a moment (the warning is said, rate-limited, and passes). This test once also asserted
    that no such warning appears; its pipe reader swallowed stderr, so that check never ran."""
    port = free_port()
    proc, held = listen_with_few_files(tmp_path, port)
    try:
        read_until(proc.stdout, "quiet connections closed to make room", timeout=20)
        answer = httpx.post(f"http://127.0.0.1:{port}/while-held", content=b"{}", timeout=10)
        assert answer.status_code == 200
    finally:
        for sock in held:
            sock.close()
        _out, err = stop_process(proc)
    assert "Traceback" not in err and "stopped; every acknowledged delivery is in the store" in err


def test_respond_answers_per_path_and_a_retrying_sender_sees_the_flaky_pattern(tmp_path):
    import time

    proc, url = start_listen(tmp_path / "store.db", "--respond", "/retry/*=503,times=2,header=Retry-After: 0",
                             "--respond", "/flaky/*=500,every=3,body=try again",
                             "--respond", '/slow/*=202,delay=0.3,body={"queued":true}')
    try:
        # A sender that retries on 5xx, as providers do: the third try gets through.
        tries = []
        with httpx.Client() as client:
            for _ in range(5):
                answer = client.post(url + "/retry/1", content=b"{}")
                tries.append(answer.status_code)
                if answer.status_code < 500:
                    break
            assert tries == [503, 503, 200] and answer.json()["received"] is True
            flaky = [client.post(url + "/flaky/x", content=b"{}") for _ in range(6)]
            assert [r.status_code for r in flaky] == [200, 200, 500, 200, 200, 500]
            assert flaky[2].text == "try again"
            began = time.monotonic()
            slow = client.post(url + "/slow/x", content=b"{}")
            assert slow.status_code == 202 and slow.json() == {"queued": True} and time.monotonic() - began >= 0.3
    finally:
        out, err = stop_process(proc)
    assert "answers /retry/* → 503 the first 2" in err and "answers /flaky/* → 500 every 3rd" in err
    with Store(tmp_path / "store.db") as store:
        assert store.count() == 3 + 6 + 1  # every request is captured, whatever it was answered


def test_a_bad_respond_rule_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(hookinspect_cmd("listen", "--store", str(tmp_path / "s.db"), "--respond", "/x=500,evry=2"),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "did you mean 'every'?" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def stripe_event(event_type):
    body = json.dumps({"id": "evt_1", "type": event_type, "data": {"object": {}}}).encode()
    return {"content": body, "headers": {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"}}


async def test_listen_json_streams_events_and_events_filters_what_is_printed_and_forwarded(tmp_path, target):
    proc, url = await asyncio.to_thread(start_listen, tmp_path / "store.db", "--json", "--events", "invoice.*",
                                        "--forward-to", target.url + "/in")
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.post(url + "/stripe", **stripe_event("invoice.paid"))).status_code == 200
            assert (await client.post(url + "/stripe", **stripe_event("customer.created"))).status_code == 200
            assert (await client.post(url + "/big", content=b"x" * 30 * 1024 * 1024)).status_code == 413
    finally:
        out, err = await asyncio.to_thread(stop_process, proc)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == ["delivery", "attempt", "rejected"]
    delivery, attempt, rejected = lines
    assert delivery["event_type"] == "invoice.paid" and delivery["provider"] == "stripe" and "headers" in delivery
    assert attempt["delivery_seq"] == delivery["seq"] and attempt["response"]["status"] == 200
    assert "body over" in rejected["message"]
    assert [r["body"] for r in target.received] == [stripe_event("invoice.paid")["content"]]  # only the match went on
    assert "listening on" in err  # people's lines on stderr, JSON alone on stdout
    with Store(tmp_path / "store.db") as store:
        assert store.count() == 2  # everything is stored


@pytest.mark.skipif(not __import__("shutil").which("jq"), reason="jq is not installed")
def test_the_readme_jq_pipeline_works(tmp_path):
    """The README's example: `listen --json | jq` printing the number and path of each capture."""
    port = free_port()
    shell = f"{' '.join(hookinspect_cmd('listen'))} --port {port} --store {tmp_path / 's.db'} --json " \
            "| jq -c --unbuffered 'select(.type == \"delivery\") | {seq, path}'"
    proc = subprocess.Popen(shell, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until(lambda: _answers(port), 15, "listen answering")
        httpx.post(f"http://127.0.0.1:{port}/hooks/a", content=b"{}")
        assert json.loads(read_until(proc.stdout, "/hooks/a").splitlines()[-1]) == {"seq": 1, "path": "/hooks/a"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=10)


def _answers(port):
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_listen_web_with_its_port_taken_is_an_error_at_start(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(hookinspect_cmd("listen", "--web", "--web-port", str(port), "--port", str(free_port()),
                                                "--store", str(tmp_path / "s.db")), capture_output=True, text=True,
                                timeout=30)
    assert result.returncode == 4 and "--web-port" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "s.db").exists()


def test_a_burst_prints_a_frame_of_lines_and_how_many_more_and_never_hides_a_failure():
    # The live lines are printed a frame at a time: a burst costs capture an append per
    # delivery, and the terminal gets LINES_PER_FRAME lines and "… and N more" per frame.
    import io

    from rich.console import Console

    from hookinspect.cli.listen import LINES_PER_FRAME, LivePrinter
    from hookinspect.workspace import ChangeKind, StoreChange

    written = io.StringIO()
    printer = LivePrinter(Console(file=written, width=120, color_system=None))
    for n in range(1, 501):
        delivery = make_delivery(path=f"/burst/{n}")
        delivery.seq = n
        printer.on_change(StoreChange(ChangeKind.DELIVERIES, n, delivery=delivery))
        if n == 400:
            printer.on_change(StoreChange(ChangeKind.FAILING, message="the disk is full"))
    printer.start()
    wait_until(lambda: "more" in written.getvalue(), what="the frame's lines")
    printer.stop()
    lines = written.getvalue().splitlines()
    shown = [line for line in lines if "/burst/" in line]
    assert len(shown) == LINES_PER_FRAME and "/burst/1 " in shown[0] + " "
    assert any(line.startswith("NOT STORING the disk is full") for line in lines)  # never among the "more"
    assert lines[-1] == f"… and {500 - LINES_PER_FRAME:,} more; `hookinspect ls` has them"


def test_listen_json_writes_every_event_of_a_burst(tmp_path):
    # Scripts get every line (a frame at a time), however fast deliveries come.
    out = tmp_path / "out.jsonl"
    code = (
        "import sys\n"
        "from rich.console import Console\n"
        "from hookinspect.cli.listen import LivePrinter\n"
        "from hookinspect.workspace import ChangeKind, StoreChange\n"
        "from tests.factories import make_delivery\n"
        "printer = LivePrinter(Console(), as_json=True)\n"
        "printer.start()\n"
        "for n in range(1, 1001):\n"
        "    delivery = make_delivery(path=f'/burst/{n}'); delivery.seq = n\n"
        "    printer.on_change(StoreChange(ChangeKind.DELIVERIES, n, delivery=delivery))\n"
        "printer.stop()\n")
    with out.open("wb") as sink:
        subprocess.run([sys.executable, "-c", code], stdout=sink, check=True, timeout=60)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [event["seq"] for event in events] == list(range(1, 1001))
