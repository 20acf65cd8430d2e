"""Helpers for the benchmark scripts: loopback servers as subprocesses, wrk runs, figures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

WRK_SCRIPT = textwrap.dedent("""
    wrk.method = "POST"
    local f = assert(io.open(os.getenv("HOOKINSPECT_BENCH_BODY"), "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
    done = function(summary, latency, requests)
      local e = summary.errors
      io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
        '"errors":%d,"non2xx":%d}\\n', summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99),
        e.connect + e.read + e.write + e.timeout, e.status))
    end
""")

BARE_SERVER = textwrap.dedent("""
    import sys
    from aiohttp import web

    async def handle(request):
        await request.read()
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")


# Reference points for what this stack can do at best on the machine at hand. Neither is
# hookinspect: they show how much of the gap to the bare server is the stack's own cost.

# The least a durable store can do: a writer thread that commits whatever is queued in one
# transaction, into one table without indexes, then wakes the waiting requests. `commit(request,
# body)` returns once the request is stored. Shared by the two reference servers below.
_MINIMAL_STORE = textwrap.dedent("""
    import asyncio, json, queue, sqlite3, threading

    jobs = queue.SimpleQueue()

    def write(path):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS d (seq INTEGER PRIMARY KEY, method, path, headers, body)")
        while True:
            batch = [jobs.get()]
            while True:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO d (method, path, headers, body) VALUES (?, ?, ?, ?)", [r for r, _, _ in batch])
            conn.execute("COMMIT")
            loop = batch[0][2]
            loop.call_soon_threadsafe(lambda b=batch: [f.set_result(None) for _, f, _ in b])

    def start_store(path):
        threading.Thread(target=write, args=(path,), daemon=True).start()

    async def commit(request, body):
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        headers = json.dumps([(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers])
        jobs.put(((request.method, request.raw_path, headers, body), done, loop))
        await done
""")

# The least a durable receiver can do: aiohttp and the store above; no model, no provider
# detection, no store schema.
MINIMAL_CAPTURE_SERVER = _MINIMAL_STORE + textwrap.dedent("""
    import sys
    from aiohttp import web

    async def handle(request):
        await commit(request, await request.read())
        return web.Response(text="ok")

    start_store(sys.argv[2])
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")

# The least a reverse proxy can do: aiohttp's server and client, nothing recorded. Given a
# store path as a third argument it first commits each request to the store above (what
# `listen --forward-to` must do at the least); else nothing is stored.
MINIMAL_PROXY = _MINIMAL_STORE + textwrap.dedent("""
    import sys
    from aiohttp import ClientSession, web

    async def handle(request):
        body = await request.read()
        if durable:
            await commit(request, body)
        async with request.app["session"].request(request.method, sys.argv[2] + request.path_qs, data=body,
                                                  headers={"Content-Type": request.content_type}) as answer:
            return web.Response(status=answer.status, body=await answer.read())

    async def session(app):
        app["session"] = ClientSession()
        yield
        await app["session"].close()

    durable = len(sys.argv) > 3
    if durable:
        start_store(sys.argv[3])
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def body_file(size: int = 2048) -> Path:
    payload = {"type": "invoice.paid", "data": {"object": {"id": "in_123", "amount": 1200}}, "pad": ""}
    base = len(json.dumps(payload))
    payload["pad"] = "x" * max(0, size - base)
    path = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "body.json"
    path.write_text(json.dumps(payload))
    return path


def start_bare(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    wait_port(port)
    return proc


def start_script(script: str, port: int, *args: str) -> subprocess.Popen[bytes]:
    """One of the reference servers above, on `port`."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(port), *args])
    wait_port(port)
    return proc


def start_listen(port: int, store: Path, *extra: str, checkout: str | None = None,
                 quiet: bool = True, env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`hookinspect listen` of this install, or of another checkout's directory (an earlier release).
    Not `quiet`: its live lines are rendered as for a 120-column colour terminal, then discarded."""
    env = {**os.environ, **({"PYTHONPATH": checkout} if checkout else {})}
    if not quiet:
        env.update(FORCE_COLOR="1", COLUMNS="120")
    env.update(env_extra or {})
    # Started in the store's directory: `-m` imports from the current directory first.
    proc = subprocess.Popen([sys.executable, "-m", "hookinspect", "listen", "--port", str(port), "--store", str(store),
                             *(["--quiet"] if quiet else []), *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=store.parent)
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return wrk


def run_wrk(url: str, body: Path, connections: int, seconds: int, rate_script: str | None = None) -> dict[str, float]:
    script = Path(tempfile.mkdtemp(prefix="hookinspect-wrk-")) / "post.lua"
    script.write_text(rate_script or WRK_SCRIPT)
    result = subprocess.run(
        [require_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, env={**os.environ, "HOOKINSPECT_BENCH_BODY": str(body)}, timeout=seconds + 60,
    )
    for line in result.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[8:])
            data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
            return data
    raise SystemExit(f"wrk gave no figures:\n{result.stdout}\n{result.stderr}")


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
