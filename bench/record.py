"""The cost of hookinspect.record to the app it wraps, on loopback.

    python bench/record.py [--seconds 5] [--rounds 3] [--connections 16] [--memory-requests 100000]

A minimal FastAPI app under uvicorn and a minimal Flask app under werkzeug's threaded server
(and under gunicorn with two sync workers, when gunicorn is installed), each answering POST /webhooks/{provider} and POST /api/orders alike, are run without the
middleware and with it (`paths=["/webhooks/*"]`, into a store file). wrk posts 2 KiB JSON for
`--seconds`, in `--rounds` alternating rounds; the script prints the median requests per
second of each and the ratios: a selected path (every request recorded) against the bare app
on the same path, and a path the rules leave out against the bare app on it.

Then memory: the FastAPI app with the middleware takes `--memory-requests` posts to the
selected path; its resident memory after the first tenth and at the end is printed, with how
many were recorded and dropped (the store's count).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    body_file,
    cpu_seconds,
    free_port,
    require_wrk,
    rss_kib,
    run_wrk,
    stop,
    wait_port,
)

APPS = {
    "fastapi": textwrap.dedent("""
        from fastapi import FastAPI, Request
        from hookinspect.record import ASGIRecorder

        app = FastAPI()

        @app.post("/webhooks/{provider}")
        async def webhook(provider: str, request: Request):
            return {"received": provider, "bytes": len(await request.body())}

        @app.post("/api/orders")
        async def orders(request: Request):
            return {"received": "order", "bytes": len(await request.body())}

        if RECORD:
            app = ASGIRecorder(app, store="webhooks.db", paths=["/webhooks/*"])
    """),
    "flask": textwrap.dedent("""
        from flask import Flask, request
        from hookinspect.record import WSGIRecorder

        app = Flask(__name__)

        @app.post("/webhooks/<provider>")
        def webhook(provider):
            return {"received": provider, "bytes": len(request.get_data())}

        @app.post("/api/orders")
        def orders():
            return {"received": "order", "bytes": len(request.get_data())}

        if RECORD:
            app.wsgi_app = WSGIRecorder(app.wsgi_app, store="webhooks.db", paths=["/webhooks/*"])
    """),
}
WERKZEUG = "import sys\nfrom werkzeug.serving import run_simple\nimport app\nrun_simple('127.0.0.1', int(sys.argv[1]), app.app, threaded=True)\n"


def start_app(framework: str, record: bool, work: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    directory = Path(tempfile.mkdtemp(prefix=f"{framework}-", dir=work))
    (directory / "app.py").write_text(f"RECORD = {record}\n" + APPS[framework.removesuffix("-gunicorn")])
    port = free_port()
    if framework == "fastapi":
        argv = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning"]
    elif framework == "flask-gunicorn":  # what a deployment runs: one sync worker a core
        argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                "--log-level", "warning", "app:app"]
    else:
        (directory / "serve.py").write_text(WERKZEUG)
        argv = [sys.executable, "serve.py", str(port)]
    proc = subprocess.Popen(argv, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port, directory / "webhooks.db"


def process_cpu(proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """CPU seconds so far of the app's processes (a server's workers too) and of the writer
    processes they started (if any)."""
    spent = {"app": 0.0, "writer": 0.0}
    pending = [proc.pid]
    while pending:
        pid = pending.pop()
        try:
            is_writer = b"hookinspect.record.child" in Path(f"/proc/{pid}/cmdline").read_bytes()
            spent["writer" if is_writer else "app"] += cpu_seconds(pid)
        except OSError:  # ended meanwhile
            continue
        pending += [int(kid) for kid in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                       text=True).stdout.split()]
    return spent


def throughput(framework: str, seconds: int, rounds: int, connections: int, work: Path, body: Path) -> None:
    figures: dict[tuple[bool, str], list[float]] = {}
    cpu: dict[tuple[bool, str], list[dict[str, float]]] = {}
    answered = stored = 0  # selected requests answered by the apps with the middleware, and recorded
    for _ in range(rounds):
        for record in (False, True):
            proc, port, store = start_app(framework, record, work)
            try:
                # The path left out first: the recordings of the other are still being written after it.
                for path in ("/api/orders", "/webhooks/stripe"):
                    warm = run_wrk(f"http://127.0.0.1:{port}{path}", body, connections, 1)
                    before = process_cpu(proc)
                    result = run_wrk(f"http://127.0.0.1:{port}{path}", body, connections, seconds)
                    after = process_cpu(proc)
                    cpu.setdefault((record, path), []).append(
                        {name: (after[name] - before[name]) * 1e6 / max(1, result["requests"]) for name in after})
                    if result["errors"] or result["non2xx"]:
                        raise SystemExit(f"{framework}: {result['errors']} errors, {result['non2xx']} not 2xx on {path}")
                    figures.setdefault((record, path), []).append(result["rps"])
                    if record and path == "/webhooks/stripe":
                        answered += int(warm["requests"] + result["requests"])
            finally:
                stop(proc)  # SIGTERM: what is queued is written at exit
            if record:
                stored += store_count(store)
    median = {key: statistics.median(values) for key, values in figures.items()}
    for path, what in (("/webhooks/stripe", "selected (recorded)"), ("/api/orders", "left out by the rules")):
        bare, recorded = median[(False, path)], median[(True, path)]
        # Each round's ratio pairs runs seconds apart: this machine's speed drifts more than that.
        paired = [with_it / without for with_it, without in zip(figures[(True, path)], figures[(False, path)], strict=True)]
        app_bare = statistics.median(c["app"] for c in cpu[(False, path)])
        app_recorded = statistics.median(c["app"] for c in cpu[(True, path)])
        writer = statistics.median(c["writer"] for c in cpu[(True, path)])
        print(f"{framework:8} {what:22} bare {bare:7.0f} req/s   with the middleware {recorded:7.0f} req/s   "
              f"ratio {recorded / bare:.2f} (per round: median {statistics.median(paired):.2f}, "
              f"{min(paired):.2f}-{max(paired):.2f})   CPU per request: app {app_bare:.0f} -> {app_recorded:.0f} us, "
              f"writer process {writer:.0f} us", flush=True)
    # wrk counts the answers it read; a few in flight when a run stops are recorded uncounted.
    print(f"{framework:8} recorded {stored:,} of the {answered:,} selected requests answered "
          f"({answered - stored:,} dropped, or more recorded than counted if negative)", flush=True)


def memory(requests: int, connections: int, work: Path, body: Path) -> None:
    proc, port, store = start_app("fastapi", True, work)
    try:
        url = f"http://127.0.0.1:{port}/webhooks/stripe"
        done = 0
        early = None
        started = time.monotonic()
        while done < requests:
            result = run_wrk(url, body, connections, 5)
            done += int(result["requests"])
            if early is None and done >= requests // 10:
                early = (done, rss_kib(proc.pid))
        late = rss_kib(proc.pid)
        took = time.monotonic() - started
    finally:
        stop(proc)  # SIGTERM: what is queued is written at exit
    stored = store_count(store)
    assert early is not None
    # wrk counts the answers it read; requests still in flight when a run stops are answered
    # (and recorded) without being counted, so the store may hold a few more than wrk's count.
    print(f"memory, fastapi with the middleware: {early[1] / 1024:.1f} MiB after {early[0]:,} requests, "
          f"{late / 1024:.1f} MiB after {done:,} ({took:.0f} s); the store holds {stored:,}", flush=True)


def store_count(store: Path) -> int:
    from hookinspect.store.sqlite import Store
    if not store.exists():
        return 0
    with Store(store, create=False) as opened:
        return opened.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--only", choices=("fastapi", "flask", "flask-gunicorn", "memory"), action="append")
    args = parser.parse_args()
    require_wrk()
    body = body_file(2048)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for framework in ("fastapi", "flask", "flask-gunicorn"):
            if framework == "flask-gunicorn" and importlib.util.find_spec("gunicorn") is None:
                print("flask-gunicorn: left out (pip install gunicorn)")
                continue
            if not args.only or framework in args.only:
                throughput(framework, args.seconds, args.rounds, args.connections, work, body)
        if not args.only or "memory" in args.only:
            memory(args.memory_requests, args.connections, work, body)


if __name__ == "__main__":
    main()
