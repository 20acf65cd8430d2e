"""The web inspector in headless Chromium: first list paint on a store of 100k deliveries, how
soon a capture shows in a following page after its sender got the answer (100 deliveries at
20/s), and the server's memory with five following tabs against one.

    python bench/web.py [--deliveries 100000] [--checkout DIR]

With --checkout (another checkout's directory, an earlier release), that checkout's `web`
serves the same store too, and first paint and a page of the JSON list are measured on both
in turn, in the same run: what the Host and cross-site guard costs.

Needs Debian's chromium and the test extra (playwright). Everything runs on loopback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import free_port, stop, wait_port  # noqa: E402

# Installed in the page through the DevTools protocol (not subject to the page's CSP): the
# wall-clock time each row first appears, by delivery number.
WATCH_ROWS = """
window.__seen = {};
new MutationObserver(() => {
  for (const tr of document.querySelectorAll('#list tbody tr')) {
    if (!(tr.dataset.seq in window.__seen)) window.__seen[tr.dataset.seq] = Date.now();
  }
}).observe(document.querySelector('#list tbody'), {childList: true});
"""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def build(path: Path, count: int) -> None:
    from hookinspect.store.sqlite import Store
    from tests.factories import make_delivery

    with Store(path) as store:
        for start in range(0, count, 20_000):
            with store.transaction():
                store.insert_deliveries([make_delivery(b'{"type":"invoice.paid","n":%d}' % i, path=f"/p/{i}")
                                         for i in range(start, min(count, start + 20_000))])


def hookinspect(*args: str) -> list[str]:
    return [sys.executable, "-m", "hookinspect", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--checkout", help="also serve the store with another checkout's `web`, measured in turn")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="hookinspect-bench-"))
    big = workdir / "big.db"
    build(big, args.deliveries)
    web_port = free_port()
    web = subprocess.Popen(hookinspect("web", "--port", str(web_port), "--store", str(big)), cwd=ROOT,
                           stderr=subprocess.DEVNULL)
    other_port = free_port()
    other = None
    if args.checkout:
        # The same deliveries, stored by the other checkout's own code (an older one may not read a newer store).
        older = workdir / "checkout.db"
        subprocess.run([sys.executable, "-c", f"from bench.web import build; build(__import__('pathlib').Path({str(older)!r}), "
                                              f"{args.deliveries})"], cwd=args.checkout, check=True,
                       env={**os.environ, "PYTHONPATH": args.checkout})
        other = subprocess.Popen(hookinspect("web", "--port", str(other_port), "--store", str(older)), cwd=args.checkout,
                                 env={**os.environ, "PYTHONPATH": args.checkout}, stderr=subprocess.DEVNULL)
    live_store = workdir / "live.db"
    listen_port, live_web_port = free_port(), free_port()
    listen = subprocess.Popen(hookinspect("listen", "--port", str(listen_port), "--store", str(live_store), "--quiet",
                                          "--web", "--web-port", str(live_web_port)), cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        for port in (web_port, listen_port, live_web_port, *([other_port] if other else [])):
            wait_port(port)
        if other is not None:
            compare_first_paint(chromium, {"this checkout": web_port, "--checkout": other_port}, args.deliveries)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            # 1. First list paint from navigation, on the big store (a fresh page each time).
            paints = []
            for _ in range(5):
                page = browser.new_page()
                began = time.perf_counter()
                page.goto(f"http://127.0.0.1:{web_port}/")
                page.wait_for_selector("#list tbody tr")
                paints.append(time.perf_counter() - began)
                page.close()
            print(f"first list paint on {args.deliveries:,} deliveries: median {statistics.median(paints) * 1000:.0f} ms, "
                  f"worst {max(paints) * 1000:.0f} ms over 5 loads (target < 1 s)")
            # 2. A capture in a following page after its sender got the answer.
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{live_web_port}/")
            page.wait_for_selector("#follow")
            page.evaluate(WATCH_ROWS)
            answered = {}
            with httpx.Client() as client:
                start = time.perf_counter()
                for i in range(100):
                    time.sleep(max(0.0, start + i / 20 - time.perf_counter()))
                    response = client.post(f"http://127.0.0.1:{listen_port}/live/{i}", content=b'{"n":%d}' % i)
                    answered[response.json()["seq"]] = time.time() * 1000
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(page.evaluate("window.__seen")) < 100:
                time.sleep(0.1)
            seen = {int(k): v for k, v in page.evaluate("window.__seen").items()}
            delays = sorted(seen[seq] - answered[seq] for seq in answered if seq in seen)
            print(f"capture to row in a following page: p50 {statistics.median(delays):.0f} ms, "
                  f"p90 {delays[int(len(delays) * 0.9)]:.0f} ms, max {delays[-1]:.0f} ms; {len(delays)}/100 shown "
                  "(target p50 < 500 ms)")
            # 3. Server memory: one following tab, then five.
            web_pid = next(int(pid) for pid in subprocess.run(["pgrep", "-P", str(listen.pid)], capture_output=True,
                                                              text=True).stdout.split())
            time.sleep(1)
            one = rss_mib(web_pid)
            pages = [page]
            for _ in range(4):
                extra = browser.new_page()
                extra.goto(f"http://127.0.0.1:{live_web_port}/")
                extra.wait_for_selector("#list tbody tr")
                pages.append(extra)
            with httpx.Client() as client:
                for i in range(40):
                    client.post(f"http://127.0.0.1:{listen_port}/more/{i}", content=b"{}")
                    time.sleep(0.05)
            time.sleep(1)
            five = rss_mib(web_pid)
            print(f"web server RSS: {one:.1f} MiB with one following tab, {five:.1f} MiB with five: "
                  f"{five / one:.2f}x (target <= 1.2x)")
            browser.close()
    finally:
        stop(web)
        stop(listen)
        if other is not None:
            stop(other)


def compare_first_paint(chromium: str, ports: dict[str, int], deliveries: int, rounds: int = 7) -> None:
    """First list paint and one JSON page, the servers taken in turn (A B A B …) on the same store."""
    from playwright.sync_api import sync_playwright

    paints: dict[str, list[float]] = {name: [] for name in ports}
    pages: dict[str, list[float]] = {name: [] for name in ports}
    with sync_playwright() as p, httpx.Client() as client:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(rounds):
            for name, port in ports.items():
                page = browser.new_page()
                began = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#list tbody tr")
                paints[name].append(time.perf_counter() - began)
                page.close()
                began = time.perf_counter()
                for _ in range(20):
                    client.get(f"http://127.0.0.1:{port}/api/deliveries?limit=100").raise_for_status()
                pages[name].append((time.perf_counter() - began) / 20)
        browser.close()
    for name in ports:
        print(f"{name}: first list paint on {deliveries:,} deliveries median {statistics.median(paints[name]) * 1000:.0f} ms "
              f"(min {min(paints[name]) * 1000:.0f}, max {max(paints[name]) * 1000:.0f}); a page of 100 rows as JSON "
              f"median {statistics.median(pages[name]) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
