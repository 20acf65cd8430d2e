"""`check` throughput: 1,000 fixture records against a local target, vs plain httpx, same run.

    python bench/check.py [--count 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, start_bare, stop  # noqa: E402
from hookinspect.formats.fixtures import Expectation, FixtureRecord  # noqa: E402
from hookinspect.formats.samples import build_sample_request, find_sample  # noqa: E402
from hookinspect.model import Delivery, Headers  # noqa: E402
from hookinspect.send.check import run_checks  # noqa: E402
from hookinspect.signing.registry import Secrets, resigner_for  # noqa: E402


def records(count: int) -> list[FixtureRecord]:
    request = build_sample_request(find_sample("stripe/payment_intent.succeeded"), "http://x/", "whsec_b")
    delivery = Delivery(method="POST", path="/stripe/webhook", headers=Headers(request.headers.pairs()), body=request.body)
    return [FixtureRecord(f"r{i}", delivery, Expectation(status=200), "bench") for i in range(count)]


async def plain_httpx(url: str, items: list[FixtureRecord], concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(record: FixtureRecord) -> None:
            async with semaphore:
                response = await client.post(url + record.delivery.path, content=record.delivery.body,
                                             headers=record.delivery.headers.without("host", "content-length").pairs())
                assert response.status_code == 200

        start = time.perf_counter()
        await asyncio.gather(*(one(r) for r in items))
        return time.perf_counter() - start


async def ours(url: str, items: list[FixtureRecord], concurrency: int) -> float:
    known = Secrets()
    known.add("stripe", "whsec_b")
    start = time.perf_counter()
    results = await run_checks(items, target=url, concurrency=concurrency,
                               resigner_for=lambda d: resigner_for(d, known))
    elapsed = time.perf_counter() - start
    assert all(r.passed for r in results)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    port = free_port()
    target = start_bare(port)
    url = f"http://127.0.0.1:{port}"
    items = records(args.count)
    try:
        print(f"== {args.count} fixture records (Stripe, re-signed each) against a bare aiohttp target ==")
        for concurrency in (1, 16):
            base = asyncio.run(plain_httpx(url, items, concurrency))
            mine = asyncio.run(ours(url, items, concurrency))
            print(f"concurrency {concurrency:>2}: plain httpx {args.count / base:7.0f}/s   hookinspect check "
                  f"{args.count / mine:7.0f}/s   ratio {base / mine:.2f} (target >= 0.7)")
    finally:
        stop(target)


if __name__ == "__main__":
    main()
