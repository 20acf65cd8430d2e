"""The TUI over a store of a million deliveries (first page, jump to the oldest, memory after
paging through 100k rows, j/k while a JSON-path filter reads every body), and a sender's
latency at 100 deliveries a second into `listen --ui` while the UI filters a 100k store with a
JSON path and scrolls, next to plain `listen` and a bare aiohttp server.

    python bench/tui.py [--seconds 10] [--deliveries 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = textwrap.dedent("""
    import asyncio, statistics, sys, time
    from textual import events
    from hookinspect.tui.app import HookinspectApp
    from hookinspect.tui.widgets.delivery_list import DeliveryList
    from textual.widgets import Input
    from hookinspect.workspace import Workspace

    def rss_mib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    async def until(pilot, predicate, timeout=120):
        deadline = time.perf_counter() + timeout
        while not predicate():
            if time.perf_counter() > deadline:
                raise SystemExit("timed out")
            await pilot.pause(0.005)

    def watch_frames(app):
        # The time of the last frame the app drew (headless: composed, not written).
        last = [0.0]
        display = app._display
        def timed(screen, renderable):
            if renderable is not None:
                last[0] = time.perf_counter()
            display(screen, renderable)
        app._display = timed
        return last

    async def key_to_frame(app, table, frames, key):
        # Milliseconds from a key reaching the app to the frame that shows the cursor moved (sent
        # as a terminal would: Pilot's press also waits for the whole process to go idle).
        before = table.cursor
        sent = time.perf_counter()
        app._driver.send_message(events.Key(key, None))
        while table.cursor == before or frames[0] < sent:
            if time.perf_counter() - sent > 30:
                raise SystemExit(f"{key} got no answer in 30 s")
            await asyncio.sleep(0.0005)
        return (frames[0] - sent) * 1000

    async def main():
        start = time.perf_counter()
        app = HookinspectApp(Workspace(sys.argv[1]))
        async with app.run_test(size=(160, 120)) as pilot:
            frames = watch_frames(app)
            table = app.query_one(DeliveryList)
            await until(pilot, lambda: len(table.index) and "Body" in app.query_one("#request").plain)
            print(f"first_page {time.perf_counter() - start:.3f}")
            rss_first = rss_mib()
            print(f"rss_first {rss_first:.1f}")
            began = time.perf_counter()
            await pilot.press("G")
            await until(pilot, lambda: table.index.complete and table.cursor == len(table.index) - 1
                        and table.current_seq == 1)
            await pilot.pause()
            print(f"oldest {time.perf_counter() - began:.3f}")
            await pilot.press("g")
            began = time.perf_counter()
            paging = []
            while table.cursor < 100_000:
                paging.append(await key_to_frame(app, table, frames, "pagedown"))
            paging.sort()
            print(f"paged {table.cursor} {time.perf_counter() - began:.1f} {statistics.median(paging):.1f}")
            await app.workers.wait_for_complete()
            print(f"rss_paged {rss_mib():.1f}")
            # A JSON-path filter over every body, while j/k keep answering.
            await pilot.press("slash")
            # The newest 20 match: the list has rows to move in while the scan reads every body.
            app.query_one("#filter", Input).value = f"$.n>={int(sys.argv[2]) - 20}"
            began = time.perf_counter()
            await pilot.press("enter")
            latencies = []
            key = "j"
            while not table.index.complete:
                latencies.append(await key_to_frame(app, table, frames, key))
                key = "k" if key == "j" else "j"
                await asyncio.sleep(0.05)  # a person's pace: 20 keys a second
            print(f"filter {time.perf_counter() - began:.1f} {len(table.index)}")
            latencies.sort()
            print(f"keys {len(latencies)} {statistics.median(latencies):.1f} "
                  f"{latencies[int(len(latencies) * 0.99)]:.1f} {latencies[-1]:.1f}")

    asyncio.run(main())
""")


# The UI side of `listen --ui`, headless: listens on argv[2] and keeps filtering and scrolling.
BUSY_UI = textwrap.dedent("""
    import asyncio, sys
    from hookinspect.intake.background import ReceiverProcess
    from hookinspect.intake.receiver import ReceiverSettings
    from hookinspect.tui.app import HookinspectApp
    from hookinspect.workspace import Workspace

    async def main(receiver):
        app = HookinspectApp(Workspace(sys.argv[1]), receiver=receiver)
        async with app.run_test(size=(140, 45)) as pilot:
            print("ready", flush=True)
            filters = ["$.pad~^x", "method:POST", "$.type=invoice.paid", ""]
            n = 0
            while True:
                await pilot.press("slash")
                await pilot.press("ctrl+a", "ctrl+k", *filters[n % len(filters)], "enter")
                await pilot.press(*["j"] * 20, "pagedown", *["k"] * 10)
                n += 1

    # As `listen --ui` does: the receiver forked before the UI starts.
    receiver = ReceiverProcess(sys.argv[1], ReceiverSettings(), "127.0.0.1", int(sys.argv[2]))
    receiver.start()
    try:
        asyncio.run(main(receiver))
    finally:
        receiver.stop()
""")

# A sender at a steady rate: prints p50 and p99 latency in ms.
SENDER = textwrap.dedent("""
    import sys, time, httpx
    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    body = b'{"type":"invoice.paid","pad":"' + b"x" * 1900 + b'"}'
    latencies = []
    with httpx.Client() as client:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            client.post(url, content=body, headers={"Content-Type": "application/json"}).raise_for_status()
            latencies.append(time.perf_counter() - sent)
    latencies.sort()
    print(f"{latencies[len(latencies) // 2] * 1000:.2f} {latencies[int(len(latencies) * 0.99)] * 1000:.2f}")
""")


def steady_latency(port: int, seconds: float) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", SENDER, f"http://127.0.0.1:{port}/in", "100", str(seconds)],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout.split()
    return float(out[0]), float(out[1])


def capture_while_busy(seconds: float) -> None:
    sys.path.insert(0, str(ROOT))
    from bench._common import free_port, start_bare, start_listen, stop, wait_port

    results = {}
    port = free_port()
    bare = start_bare(port)
    try:
        results["bare aiohttp"] = steady_latency(port, seconds)
    finally:
        stop(bare)
    workdir = Path(tempfile.mkdtemp(prefix="hookinspect-bench-"))
    build(workdir / "plain.db", 1_000)
    port = free_port()
    plain = start_listen(port, workdir / "plain.db")
    try:
        results["listen"] = steady_latency(port, seconds)
    finally:
        stop(plain)
    build(workdir / "ui.db", 100_000)
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-c", BUSY_UI, str(workdir / "ui.db"), str(port)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)
    try:
        assert ui.stdout is not None and ui.stdout.readline().strip() == "ready"
        wait_port(port)
        results["listen --ui, filtering 100k"] = steady_latency(port, seconds)
    finally:
        stop(ui)
    print(f"sender at 100 deliveries/s for {seconds:g} s:")
    for name, (p50, p99) in results.items():
        print(f"  {name:28} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    ratio = results["listen --ui, filtering 100k"][1] / results["listen"][1]
    print(f"listen --ui p99 vs listen p99: {ratio:.2f}x (target <= 1.5x)")


def build(path: Path, count: int) -> None:
    sys.path.insert(0, str(ROOT))
    from hookinspect.store.sqlite import Store
    from tests.factories import make_delivery

    with Store(path) as store:
        for start in range(0, count, 10_000):
            with store.transaction():
                store.insert_deliveries([make_delivery(b'{"type":"invoice.paid","pad":"' + b"x" * 1900 + b'"}',
                                                       path=f"/p/{i}") for i in range(start, min(count, start + 10_000))])


def build_small(path: Path, count: int) -> None:
    """`count` deliveries of ~100 bytes, each with its own number in the JSON (what the filter tests)."""
    sys.path.insert(0, str(ROOT))
    from hookinspect.store.sqlite import Store
    from tests.factories import make_delivery

    with Store(path) as store:
        for start in range(0, count, 20_000):
            with store.transaction():
                store.insert_deliveries([make_delivery(b'{"type":"invoice.paid","n":%d,"data":{"amount":%d}}' % (i, i % 5000),
                                                       path=f"/p/{i}") for i in range(start, min(count, start + 20_000))])


def big_store(count: int) -> None:
    path = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db"
    began = time.perf_counter()
    build_small(path, count)
    print(f"built a store of {count:,} deliveries in {time.perf_counter() - began:.0f} s "
          f"({path.stat().st_size / 2**20:.0f} MiB)")
    run = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(count)], capture_output=True, text=True, cwd=ROOT,
                         timeout=1800)
    if run.returncode:
        raise SystemExit(f"the measuring app failed: {run.stderr.strip().splitlines()[-1:]}")
    out = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    rss_first, rss_paged = float(out["rss_first"]), float(out["rss_paged"])
    paged_rows, paged_seconds, page_ms = out["paged"].split()
    filter_seconds, matches = out["filter"].split()
    presses, p50, p99, worst = out["keys"].split()
    print(f"  first page {float(out['first_page']) * 1000:.0f} ms (app start included; target < 1 s)")
    print(f"  jump to the oldest {float(out['oldest']) * 1000:.0f} ms (target < 1 s)")
    print(f"  RSS {rss_first:.1f} MiB at the first page, {rss_paged:.1f} MiB after paging {int(paged_rows):,} rows "
          f"in {paged_seconds} s (pagedown to frame p50 {page_ms} ms): {rss_paged / rss_first:.2f}x (target <= 1.2x)")
    print(f"  JSON-path filter over {count:,}: {filter_seconds} s to {matches} matches; meanwhile {presses} j/k presses "
          f"answered in p50 {p50} ms, p99 {p99} ms, max {worst} ms (target < 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each steady-rate run")
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="size of the big store")
    args = parser.parse_args()
    big_store(args.deliveries)
    capture_while_busy(args.seconds)


if __name__ == "__main__":
    main()
