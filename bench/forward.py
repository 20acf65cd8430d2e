"""Added latency and throughput of `listen --forward-to` against a bare target, in one run.

    python bench/forward.py [--seconds 8]

Needs `wrk`. Loads (a) the bare aiohttp target directly and (b) hookinspect in proxy mode
in front of it: 16 connections for throughput, and a steady 100 req/s for added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    MINIMAL_PROXY,
    body_file,
    free_port,
    run_wrk,
    start_bare,
    start_listen,
    start_script,
    stop,
    wait_port,
)


async def steady(url: str, body: bytes, rate: int, seconds: float) -> list[float]:
    """Send `rate` requests per second for `seconds`; latency of each in ms."""
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=10) as client:
        async def one() -> None:
            start = time.perf_counter()
            response = await client.post(url, content=body, headers={"Content-Type": "application/json"})
            if response.status_code == 200:
                latencies.append((time.perf_counter() - start) * 1000)

        tasks = []
        begin = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--mitmdump", default=shutil.which("mitmdump"),
                        help="mitmdump to compare with (it needs its own venv on this Python): --mitmdump /path/to/mitmdump")
    parser.add_argument("--checkout", help="also run another checkout's listen --forward-to (an earlier release)")
    args = parser.parse_args()
    body_path = body_file(2048)
    body = body_path.read_bytes()
    target_port, proxy_port = free_port(), free_port()
    target = start_bare(target_port)
    store = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db"
    proxy = start_listen(proxy_port, store, "--forward-to", f"http://127.0.0.1:{target_port}/")
    try:
        direct_url, proxied_url = f"http://127.0.0.1:{target_port}/hook", f"http://127.0.0.1:{proxy_port}/hook"
        print("== 16 connections, 2 KiB JSON POST (wrk -t1) ==")
        print("   minimal proxy (ref): aiohttp server + aiohttp client, nothing stored or recorded")
        print("   minimal durable proxy (ref): the same, committing each request (group commit) before forwarding")
        print(f"{'path':<32}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>8}")
        run_wrk(proxied_url, body_path, 16, 1)
        direct = run_wrk(direct_url, body_path, 16, args.seconds)
        through = run_wrk(proxied_url, body_path, 16, args.seconds)
        references = []
        for name, store_args in (("minimal proxy (ref)", ()),
                                 ("minimal durable proxy (ref)", (str(Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "m.db"),))):
            least_port = free_port()
            least_proxy = start_script(MINIMAL_PROXY, least_port, f"http://127.0.0.1:{target_port}", *store_args)
            try:
                run_wrk(f"http://127.0.0.1:{least_port}/hook", body_path, 16, 1)
                references.append((name, run_wrk(f"http://127.0.0.1:{least_port}/hook", body_path, 16, args.seconds)))
            finally:
                stop(least_proxy)
        workers_port = free_port()
        workers_proxy = start_listen(workers_port, Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db",
                                     "--forward-to", f"http://127.0.0.1:{target_port}/", "--workers", "2")
        try:
            run_wrk(f"http://127.0.0.1:{workers_port}/hook", body_path, 16, 1)
            through_workers = run_wrk(f"http://127.0.0.1:{workers_port}/hook", body_path, 16, args.seconds)
        finally:
            stop(workers_proxy)
        rows = [("direct to target", direct), *references, ("through hookinspect", through),
                ("through hookinspect, 2 workers", through_workers)]
        if args.checkout:
            other_port = free_port()
            other = start_listen(other_port, Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db",
                                 "--forward-to", f"http://127.0.0.1:{target_port}/", checkout=args.checkout)
            try:
                run_wrk(f"http://127.0.0.1:{other_port}/hook", body_path, 16, 1)
                rows.append(("through --checkout", run_wrk(f"http://127.0.0.1:{other_port}/hook", body_path, 16,
                                                           args.seconds)))
            finally:
                stop(other)
        if args.mitmdump:
            mitm_port = free_port()
            flows = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "flows"
            mitm = subprocess.Popen([args.mitmdump, "--mode", f"reverse:http://127.0.0.1:{target_port}", "-p", str(mitm_port),
                                     "-w", str(flows), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(mitm_port)
                run_wrk(f"http://127.0.0.1:{mitm_port}/hook", body_path, 16, 1)
                rows.append(("through mitmdump -w", run_wrk(f"http://127.0.0.1:{mitm_port}/hook", body_path, 16, args.seconds)))
            finally:
                stop(mitm)
        for name, fig in rows:
            print(f"{name:<32}{fig['rps']:>10.0f}{fig['p50_us'] / 1000:>9.2f}{fig['p99_us'] / 1000:>9.2f}"
                  f"{fig['errors'] + fig['non2xx']:>8}{fig['rps'] / direct['rps']:>8.2f}")
        if args.mitmdump:
            mitm_fig = rows[-1][1]
            print(f"hookinspect vs mitmdump: {through['rps'] / mitm_fig['rps']:.1f}x the throughput, "
                  f"p50 {through['p50_us'] / 1000:.1f} vs {mitm_fig['p50_us'] / 1000:.1f} ms")
        print("\n== steady 100 req/s (one httpx client) ==")
        base = asyncio.run(steady(direct_url, body, 100, args.seconds))
        ours = asyncio.run(steady(proxied_url, body, 100, args.seconds))
        for name, lat in (("direct to target", base), ("through hookinspect", ours)):
            print(f"{name:<28} n={len(lat):<5} p50 {percentile(lat, 50):6.2f} ms   p99 {percentile(lat, 99):6.2f} ms")
        print(f"added latency: p50 {percentile(ours, 50) - percentile(base, 50):.2f} ms, "
              f"p99 {percentile(ours, 99) - percentile(base, 99):.2f} ms (target: p50 <= 2 ms)")
    finally:
        stop(proxy)
        stop(target)


if __name__ == "__main__":
    main()
