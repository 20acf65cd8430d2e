"""A developer's local app for replays of recorded webhooks: it accepts Stripe and GitHub
deliveries only when they are signed with its own secrets (LOCAL_STRIPE_SECRET,
LOCAL_GITHUB_SECRET), checked by Stripe's own library and by GitHub's documented HMAC, and
answers as the recorded app does. Served by uvicorn in the tests."""

import hashlib
import hmac
import os

import stripe
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/{provider}")
async def webhook(provider: str, request: Request):
    payload = await request.body()
    if provider == "stripe":
        try:
            stripe.Webhook.construct_event(payload, request.headers.get("stripe-signature", ""),
                                           os.environ["LOCAL_STRIPE_SECRET"])
        except (ValueError, stripe.SignatureVerificationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    elif provider == "github":
        wanted = "sha256=" + hmac.new(os.environ["LOCAL_GITHUB_SECRET"].encode(), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(wanted, request.headers.get("x-hub-signature-256", "")):
            return JSONResponse({"error": "bad signature"}, status_code=400)
    return {"received": provider, "bytes": len(payload)}
