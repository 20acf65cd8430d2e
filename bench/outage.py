"""A backend that is down longer than its signature tolerance, behind `listen --ack`.

50 Stripe-signed deliveries arrive while the backend is down for `--outage` seconds (10 by
default). The backend accepts a signature only within `--tolerance` seconds (3), shorter than
the outage, as Stripe's own library checks it: only a signature made at send time passes.
Prints how long after the backend came back every delivery was accepted, and how many
sends it took. Needs the `stripe` package (the test extra installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, wait_port  # noqa: E402

SECRET = "whsec_outage"

BACKEND = """
import sys
import stripe
from aiohttp import web

tolerance = float(sys.argv[2])
accepted = rejected = 0

async def handle(request):
    global accepted, rejected
    body = await request.read()
    try:
        stripe.WebhookSignature.verify_header(body.decode(), request.headers.get("Stripe-Signature", ""),
                                              sys.argv[3], tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        rejected += 1
        return web.Response(status=400, text=str(exc))
    accepted += 1
    return web.Response(text="ok")

async def counts(request):
    return web.json_response({"accepted": accepted, "rejected": rejected})

app = web.Application()
app.router.add_get("/counts", counts)
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


async def send_events(url: str, count: int) -> None:
    import httpx

    from hookinspect.formats.samples import build_sample_request, find_sample

    async with httpx.AsyncClient() as client:
        for i in range(count):
            request = build_sample_request(find_sample("stripe/payment_intent.succeeded"), url, SECRET,
                                           [f"data.object.metadata.n={i}"])
            answer = await client.post(request.url, content=request.body, headers=request.headers.pairs())
            answer.raise_for_status()


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the backend is down")
    parser.add_argument("--tolerance", type=float, default=3.0, help="the backend's signature tolerance in seconds")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hookinspect-bench-"))
    backend_port, port = free_port(), free_port()
    listen = subprocess.Popen([sys.executable, "-m", "hookinspect", "listen", "--port", str(port), "--store",
                               str(workdir / "store.db"), "--quiet", "--ack", "--forward-to",
                               f"http://127.0.0.1:{backend_port}/", "--secret", f"stripe={SECRET}"], cwd=workdir)
    backend = None
    try:
        wait_port(port)
        down_at = time.monotonic()
        asyncio.run(send_events(f"http://127.0.0.1:{port}/stripe", args.count))
        time.sleep(max(0.0, args.outage - (time.monotonic() - down_at)))  # the outage itself
        backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(backend_port), str(args.tolerance), SECRET])
        wait_port(backend_port)
        back_at = time.monotonic()
        deadline = back_at + 120
        while True:
            counts = httpx.get(f"http://127.0.0.1:{backend_port}/counts").json()
            if counts["accepted"] >= args.count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        took = time.monotonic() - back_at
    finally:
        listen.terminate()
        listen.wait(15)
        if backend is not None:
            backend.terminate()
            backend.wait(15)
    print(f"== {args.count} Stripe deliveries, backend down {args.outage:g} s, signature tolerance {args.tolerance:g} s ==")
    print(f"accepted {counts['accepted']} of {args.count}, rejected {counts['rejected']}, "
          f"all accepted {took:.2f} s after the backend came back")


if __name__ == "__main__":
    main()
