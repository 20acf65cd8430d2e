"""The TUI: start-up on stores of 1k and 100k (time to the first page, peak memory), and a
sender's latency at 100 deliveries a second into `listen --ui` while the UI filters a 100k
store with a JSON path and scrolls, next to plain `listen` and a bare aiohttp server.

    python bench/tui.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = textwrap.dedent("""
    import asyncio, resource, sys, time
    from hookinspect.tui.app import HookinspectApp
    from hookinspect.tui.widgets.delivery_list import DeliveryList
    from hookinspect.workspace import Workspace

    async def main():
        start = time.perf_counter()
        app = HookinspectApp(Workspace(sys.argv[1]))
        async with app.run_test(size=(160, 50)) as pilot:
            while not app.query_one(DeliveryList).seqs:
                await pilot.pause(0.01)
            await pilot.pause()
            first_page = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{first_page:.3f} {peak:.1f}")

    asyncio.run(main())
""")


# The UI side of `listen --ui`, headless: listens on argv[2] and keeps filtering and scrolling.
BUSY_UI = textwrap.dedent("""
    import asyncio, sys
    from hookinspect.background import ReceiverProcess
    from hookinspect.receiver import ReceiverSettings
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each steady-rate run")
    args = parser.parse_args()
    results = {}
    for count in (1_000, 100_000):
        path = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db"
        build(path, count)
        out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout.split()
        results[count] = (float(out[0]), float(out[1]))
        print(f"{count:>7} deliveries: first page after {results[count][0] * 1000:.0f} ms (headless, app start included), "
              f"peak RSS {results[count][1]:.1f} MiB")
    print(f"100k vs 1k: time {results[100_000][0] / results[1_000][0]:.2f}x (target 100k <= 1 s), "
          f"memory {results[100_000][1] / results[1_000][1]:.2f}x (target <= 1.5x)")
    capture_while_busy(args.seconds)


if __name__ == "__main__":
    main()
