"""A small example backend for the README walkthrough: an online shop and a lab endpoint.

    SHOP_STRIPE_SECRET=whsec_demo python samples/backend/app.py --port 3000

POST /stripe/webhook  verifies Stripe-Signature over the raw body, marks orders paid/failed/refunded
POST /lab/results     accepts FHIR DiagnosticReports (final, then corrected)
GET  /orders, /reports  what the backend knows now
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import time

from aiohttp import web

TOLERANCE = 300
SECRET = web.AppKey("secret", str)
ORDERS = web.AppKey("orders", dict)
REPORTS = web.AppKey("reports", dict)


def stripe_signature_ok(body: bytes, header: str, secret: str, now: float) -> str | None:
    """None when valid, else why not (what a careful shop backend checks)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        return "malformed Stripe-Signature"
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    candidates = [v for k, v in (p.split("=", 1) for p in header.split(",") if "=" in p) if k == "v1"]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        return "signature mismatch"
    if now - int(parts["t"]) > TOLERANCE:
        return "signature too old"
    return None


async def stripe_webhook(request: web.Request) -> web.Response:
    body = await request.read()  # the raw bytes: re-serialised JSON would not verify
    problem = stripe_signature_ok(body, request.headers.get("Stripe-Signature", ""), request.app[SECRET], time.time())
    if problem:
        return web.json_response({"error": problem}, status=400)
    event = json.loads(body)
    obj = event["data"]["object"]
    order_id = (obj.get("metadata") or {}).get("order_id")
    status = {"payment_intent.succeeded": "paid", "payment_intent.payment_failed": "payment_failed",
              "charge.refunded": "refunded"}.get(event["type"])
    if order_id is None or status is None:
        return web.json_response({"ignored": event["type"]})
    request.app[ORDERS][order_id] = {"status": status, "amount": obj.get("amount"), "event": event["id"]}
    return web.json_response({"order": order_id, "status": status})


async def lab_results(request: web.Request) -> web.Response:
    try:
        report = json.loads(await request.read())  # FHIR's content type is application/fhir+json
    except ValueError:
        return web.json_response({"error": "not JSON"}, status=400)
    if report.get("resourceType") != "DiagnosticReport":
        return web.json_response({"error": "expected a DiagnosticReport"}, status=422)
    reports = request.app[REPORTS]
    previous = reports.get(report["id"])
    if report.get("status") == "corrected" and previous is None:
        return web.json_response({"error": "correction for an unknown report"}, status=409)
    values = {o["id"]: o["valueQuantity"]["value"] for o in report.get("contained", []) if "valueQuantity" in o}
    reports[report["id"]] = {"status": report["status"], "values": values}
    return web.json_response({"report": report["id"], "status": report["status"], "amended": previous is not None})


async def list_orders(request: web.Request) -> web.Response:
    return web.json_response(request.app[ORDERS])


async def list_reports(request: web.Request) -> web.Response:
    return web.json_response(request.app[REPORTS])


def create_app(secret: str) -> web.Application:
    app = web.Application()
    app[SECRET] = secret
    app[ORDERS] = {}
    app[REPORTS] = {}
    app.router.add_post("/stripe/webhook", stripe_webhook)
    app.router.add_post("/lab/results", lab_results)
    app.router.add_get("/orders", list_orders)
    app.router.add_get("/reports", list_reports)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    web.run_app(create_app(os.environ.get("SHOP_STRIPE_SECRET", "whsec_demo")), host="127.0.0.1", port=args.port)
