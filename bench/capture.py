"""Capture throughput, insert cost, listing speed and memory, against a bare aiohttp server.

    python bench/capture.py [--seconds 8] [--rounds 2] [--throughput-only] [--checkout DIR] [--only SERVER]

Needs `wrk` (apt-get install wrk). Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    MINIMAL_CAPTURE_SERVER,
    body_file,
    free_port,
    peak_rss_kib,
    run_wrk,
    start_bare,
    start_listen,
    start_script,
    stop,
)
from hookinspect.store.sqlite import Store  # noqa: E402
from tests.factories import make_delivery  # noqa: E402


def measure(start_server, body: Path, connections: int, seconds: int) -> dict[str, float]:
    """One warm-up second, then a measured wrk run, against a server started on a free port."""
    port = free_port()
    server = start_server(port)
    try:
        run_wrk(f"http://127.0.0.1:{port}/warm", body, connections, 1)
        return run_wrk(f"http://127.0.0.1:{port}/hook", body, connections, seconds)
    finally:
        stop(server)


def throughput(seconds: int, rounds: int, checkout: str | None = None, only: list[str] | None = None) -> None:
    body = body_file(2048)
    print("== durable capture vs bare aiohttp (2 KiB JSON POST, wrk -t1) ==")
    print("   minimal durable (ref): aiohttp + a group-commit SQLite thread, one table, nothing else")
    print(f"   {rounds} round(s) per connection count; each ratio is against the bare run of its own round")
    print(f"{'server':<30}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>8}")
    stores: list[Path] = []

    def start_ours(*extra: str, checkout: str | None = None, quiet: bool = True, env: dict[str, str] | None = None):
        def start(port: int) -> subprocess.Popen[bytes]:
            stores.append(fresh_dir() / "store.db")
            return start_listen(port, stores[-1], *extra, checkout=checkout, quiet=quiet, env_extra=env)
        return start

    servers = [
        ("bare aiohttp", start_bare),
        ("minimal durable (ref)", lambda port: start_script(MINIMAL_CAPTURE_SERVER, port, str(fresh_dir() / "min.db"))),
        ("hookinspect listen", start_ours()),
        ("listen (live lines)", start_ours(quiet=False)),
        ("listen --durability process", start_ours("--durability", "process")),
        ("listen --workers 2", start_ours("--workers", "2")),
    ]
    if checkout:
        servers.append(("listen of --checkout", start_ours(checkout=checkout)))
        servers.append(("live lines of --checkout", start_ours(checkout=checkout, quiet=False)))
    if only:  # the bare run stays: every ratio is against it
        servers = [(name, start) for name, start in servers if name == "bare aiohttp" or name in only]
    ours = [name for name, _ in servers if name.startswith(("hookinspect", "listen", "live"))]
    for connections in (16, 64):
        ratios: dict[str, list[float]] = {name: [] for name, _ in servers}
        for _ in range(rounds):
            figures = {name: measure(start, body, connections, seconds) for name, start in servers}
            base = figures["bare aiohttp"]["rps"]
            for name, fig in figures.items():
                ratios[name].append(fig["rps"] / base)
                print(f"{name:<30}{connections:>6}{fig['rps']:>10.0f}{fig['p50_us'] / 1000:>9.2f}"
                      f"{fig['p99_us'] / 1000:>9.2f}{fig['errors'] + fig['non2xx']:>8}{fig['rps'] / base:>8.2f}")
            for store, name in zip(stores[-len(ours):], ours, strict=True):
                with sqlite3.connect(store) as opened:  # plain SQLite: an earlier checkout's store stays as it is
                    stored = opened.execute("SELECT count(*) FROM deliveries").fetchone()[0]
                acknowledged = figures[name]["requests"]
                # wrk counts the measured run only; the store also holds the warm-up second's deliveries.
                print(f"  {name}: stored {stored} deliveries for {acknowledged} measured requests plus the warm-up")
        for name, values in ratios.items():
            if name != "bare aiohttp":
                print(f"  {name} at {connections} connections: ratio median {statistics.median(values):.2f}"
                      f" (range {min(values):.2f}-{max(values):.2f})")


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hookinspect-bench-"))


def insert_cost() -> None:
    print("\n== insert cost vs store size (one transaction per insert, 2 KiB body) ==")
    path = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db"
    results = {}
    with Store(path) as store:
        filled = 0
        for target in (1_000, 100_000):
            with store.transaction():
                while filled < target:
                    store.insert_delivery(make_delivery(b"x" * 2048, path=f"/fill/{filled}"))
                    filled += 1
            samples = []
            for _ in range(5):  # the best of five: a disk flushing earlier writes slows some
                start = time.perf_counter()
                for _ in range(500):
                    with store.transaction():
                        store.insert_delivery(make_delivery(b"x" * 2048))
                samples.append((time.perf_counter() - start) / 500)
            filled += 2500
            results[target] = min(samples)
            print(f"  with {target:>7} stored: {results[target] * 1e6:8.1f} µs per insert")
        print(f"  ratio 100k/1k: {results[100_000] / results[1_000]:.2f} (target <= 1.2)")
        print("\n== ls newest 50 from a 100k store ==")
        samples = []
        for _ in range(20):
            start = time.perf_counter()
            rows = store.list(limit=50)
            samples.append(time.perf_counter() - start)
        assert len(rows) == 50
        print(f"  store.list(limit=50): best {min(samples) * 1000:.2f} ms, median {sorted(samples)[10] * 1000:.2f} ms (target < 100 ms)")
        start = time.perf_counter()
        total = store.count()
        print(f"  store.count() over {total}: {(time.perf_counter() - start) * 1000:.2f} ms")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hookinspect", "ls", "-n", "50", "--json", "--store", str(path)],
                   check=True, capture_output=True)
    print(f"  whole `hookinspect ls -n 50 --json` process (Python start-up included): "
          f"{(time.perf_counter() - start) * 1000:.0f} ms")
    conn = sqlite3.connect(path)
    print(f"  store file: {path.stat().st_size / 1e6:.0f} MB for {total} deliveries")
    conn.close()


def memory(seconds: int) -> None:
    print("\n== peak memory of listen: after 1k vs after 50k deliveries ==")
    body = body_file(2048)
    store = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db"
    port = free_port()
    listen = start_listen(port, store)
    try:
        url = f"http://127.0.0.1:{port}/mem"
        count = 0
        with Store(store, create=False) as opened:
            while opened.count() < 1000:
                run_wrk(url, body, 16, 1)
            count = opened.count()
            at_1k = peak_rss_kib(listen.pid)
            print(f"  after {count:>6} deliveries: peak RSS {at_1k / 1024:.1f} MiB")
            deadline = time.monotonic() + 120
            while opened.count() < 50_000 and time.monotonic() < deadline:
                run_wrk(url, body, 64, seconds)
            count = opened.count()
            at_50k = peak_rss_kib(listen.pid)
        print(f"  after {count:>6} deliveries: peak RSS {at_50k / 1024:.1f} MiB")
        print(f"  ratio: {at_50k / at_1k:.2f} (target <= 1.3)")
    finally:
        stop(listen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per connection count (runs vary)")
    parser.add_argument("--throughput-only", action="store_true", help="skip insert cost, listing and memory")
    parser.add_argument("--checkout", help="also run another checkout's listen (an earlier release) in each round")
    parser.add_argument("--only", action="append", metavar="SERVER",
                        help="only this row beside the bare run (repeatable), e.g. --only 'hookinspect listen' "
                             "--only 'listen (live lines)'")
    args = parser.parse_args()
    throughput(args.seconds, max(1, args.rounds), args.checkout, args.only)
    if not args.throughput_only:
        insert_cost()
        memory(args.seconds)


if __name__ == "__main__":
    main()
