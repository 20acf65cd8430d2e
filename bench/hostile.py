"""Hostile senders against `listen` and `relay`, next to a bare aiohttp server in the same run.

1. Connection flood: the server runs with `ulimit -n 1024`; a stranger holds `--idle` idle
   connections and `--slowloris` connections that send a header line every second and never
   finish. Meanwhile a real sender posts a small delivery `--probes` times, each on a new
   connection: prints how many were answered and how fast, and how many lines the server
   wrote (a traceback per refused connection shows up here).
2. Header flood: one request with 1,000 headers of 60 KB (57 MiB): prints the status and the
   server's memory (RSS) before and after.

Needs the package installed (`pip install -e .`); everything runs on loopback and ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BARE_SERVER, free_port, rss_kib, stop, wait_port  # noqa: E402

SERVER_FILES = 1024
PROBE_BODY = b'{"type":"probe"}'


def limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FILES, SERVER_FILES))


def start(kind: str, port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"{kind}.log"
    if kind == "bare":
        command = [sys.executable, "-c", BARE_SERVER, str(port)]
    elif kind == "listen":
        command = [sys.executable, "-m", "hookinspect", "listen", "--port", str(port), "--store",
                   str(workdir / "store.db"), "--quiet"]
    else:
        command = [sys.executable, "-m", "hookinspect", "relay", "--port", str(port), "--data", str(workdir / "relay")]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit_files, cwd=workdir)
    wait_port(port)
    return proc, log


def probe_path(kind: str, port: int) -> str:
    if kind != "relay":
        return "/probe"
    import httpx

    return "/" + httpx.post(f"http://127.0.0.1:{port}/api/channels", json={"public": True}).json()["id"]


def probe(port: int, path: str, timeout: float = 5.0) -> float | None:
    """One delivery on a new connection: seconds until the answer, or None when none came."""
    started = time.perf_counter()
    request = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
               b"Connection: close\r\n\r\n%s" % (path.encode(), len(PROBE_BODY), PROBE_BODY))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            answer = sock.recv(200)
    except OSError:
        return None
    return time.perf_counter() - started if answer.startswith(b"HTTP/1.1 2") else None


def flood(port: int, idle: int, slowloris: int, seconds: float, ready: multiprocessing.Event) -> None:
    """The stranger: opens and holds connections until `seconds` have passed."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the stranger is not the one limited

    async def run() -> None:
        async def connect() -> asyncio.StreamWriter | None:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
                return writer
            except (OSError, TimeoutError):
                return None

        writers = [w for w in await asyncio.gather(*(connect() for _ in range(idle + slowloris))) if w]
        slow = writers[:slowloris]
        for n, writer in enumerate(slow):
            writer.write(b"POST /slow-%d HTTP/1.1\r\nHost: x\r\n" % n)
        ready.set()
        deadline = time.monotonic() + seconds
        line = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            line += 1
            for writer in slow:
                if not writer.is_closing():
                    writer.write(b"X-Trickle-%d: 1\r\n" % line)
        for writer in writers:
            writer.close()

    asyncio.run(run())


def connection_flood(kind: str, args: argparse.Namespace) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="hookinspect-bench-"))
    port = free_port()
    proc, log = start(kind, port, workdir)
    try:
        path = probe_path(kind, port)
        ready = multiprocessing.Event()
        stranger = multiprocessing.Process(target=flood, args=(port, args.idle, args.slowloris, args.seconds, ready))
        stranger.start()
        ready.wait(60)
        times = []
        for _ in range(args.probes):
            times.append(probe(port, path))
            time.sleep(args.seconds / (args.probes + 2))
        stranger.join(args.seconds + 30)
        answered = [t for t in times if t is not None]
        return {"answered": len(answered), "probes": args.probes,
                "p50_ms": statistics.median(answered) * 1000 if answered else None,
                "max_ms": max(answered) * 1000 if answered else None,
                "log_lines": len(log.read_bytes().splitlines()), "log_bytes": log.stat().st_size,
                "alive": proc.poll() is None and probe(port, path) is not None}
    finally:
        stop(proc)


def header_flood(kind: str) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="hookinspect-bench-"))
    port = free_port()
    proc, _ = start(kind, port, workdir)
    try:
        path = probe_path(kind, port)
        probe(port, path)
        before = rss_kib(proc.pid)
        status = b"none"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\n" % path.encode())
            try:
                for n in range(1000):
                    sock.sendall(b"X-Pad-%d: %s\r\n" % (n, b"a" * 60_000))
                sock.sendall(b"Content-Length: 2\r\n\r\n{}")
            except OSError:
                pass  # the server answered and closed before the end: what a limit should do
            try:
                status = sock.recv(100).split(b" ")[1]
            except (OSError, IndexError):
                pass
        after = rss_kib(proc.pid)
        return {"status": status.decode(), "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
                "alive": probe(port, path) is not None}
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slowloris", type=int, default=500)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--servers", default="bare,listen,relay")
    args = parser.parse_args()
    kinds = args.servers.split(",")
    print(textwrap.dedent(f"""\
        connection flood: {args.idle} idle + {args.slowloris} slowloris, server ulimit -n {SERVER_FILES},
        {args.probes} real deliveries on new connections over {args.seconds:g} s"""))
    for kind in kinds:
        result = connection_flood(kind, args)
        p50 = f"{result['p50_ms']:.1f}" if result["p50_ms"] is not None else "-"
        worst = f"{result['max_ms']:.1f}" if result["max_ms"] is not None else "-"
        print(f"  {kind:7} answered {result['answered']}/{result['probes']}  p50 {p50} ms  max {worst} ms  "
              f"log {result['log_lines']} lines / {result['log_bytes']} B  alive after: {result['alive']}")
    print("header flood: one request with 1,000 headers of 60 KB (57 MiB)")
    for kind in kinds:
        result = header_flood(kind)
        print(f"  {kind:7} status {result['status']}  RSS {result['rss_before_mb']:.0f} -> {result['rss_after_mb']:.0f} MB"
              f"  alive after: {result['alive']}")


if __name__ == "__main__":
    main()
