"""Small real applications for checks: an ASGI app and a WSGI app written by hand.

Both answer POST /stripe/webhook by verifying the Stripe signature with the secret
`whsec_apps` and returning {"received": true, "type": ...}; a bad signature gets 400.
"""

from __future__ import annotations

import hashlib
import hmac
import json


def _verdict(body: bytes, header: str) -> tuple[int, dict]:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    expected = hmac.new(b"whsec_apps", f"{parts.get('t', '')}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        return 400, {"error": "bad signature"}
    return 200, {"received": True, "type": json.loads(body)["type"]}


async def asgi_app(scope, receive, send):
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    status, payload = _verdict(body, headers.get("stripe-signature", ""))
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


def wsgi_app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    status, payload = _verdict(body, environ.get("HTTP_STRIPE_SIGNATURE", ""))
    start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]
