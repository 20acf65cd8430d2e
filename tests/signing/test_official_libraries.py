"""New providers checked against the providers' own libraries (test extra): sign with
hookinspect and the library accepts; sign as the library does and hookinspect says valid;
a tampered body or a wrong secret is refused by both."""

import pytest

from hookinspect.model import Headers
from hookinspect.signing.base import INVALID, VALID, SignedMessage
from hookinspect.signing.registry import PROVIDERS

NOW = 1_764_345_600.0
URL = "https://shop.example.com/webhooks/square?src=1"
BODY = b'{"type":"payment.updated","event_id":"e1","data":{"object":{"payment":{"amount_money":{"amount":4990}}}}}'


def sign(provider, body, secret, headers=()):
    message = SignedMessage("POST", URL, Headers(list(headers)), body)
    return PROVIDERS[provider].sign(message, secret, NOW)


def verdict(provider, body, secret, headers):
    return PROVIDERS[provider].verify(SignedMessage("POST", URL, Headers(list(headers.items())), body), secret, NOW).status


def test_square_agrees_with_squareup():
    helper = pytest.importorskip("square.utils.webhooks_helper", reason="squareup is not installed")
    key = "sq-signature-key"
    header = sign("square", BODY, key)["x-square-hmacsha256-signature"]
    assert helper.verify_signature(request_body=BODY.decode(), signature_header=header, signature_key=key,
                                   notification_url=URL)
    assert not helper.verify_signature(request_body=BODY.decode() + " ", signature_header=header, signature_key=key,
                                       notification_url=URL)
    # The library's own check, reproduced for the other direction: its HMAC over URL + body.
    import base64
    import hashlib
    import hmac
    theirs = base64.b64encode(hmac.new(key.encode(), URL.encode() + BODY, hashlib.sha256).digest()).decode()
    assert helper.verify_signature(request_body=BODY.decode(), signature_header=theirs, signature_key=key, notification_url=URL)
    assert verdict("square", BODY, key, {"x-square-hmacsha256-signature": theirs}) == VALID
    assert verdict("square", BODY, "wrong", {"x-square-hmacsha256-signature": theirs}) == INVALID


def test_razorpay_agrees_with_razorpay():
    razorpay = pytest.importorskip("razorpay", reason="razorpay is not installed")
    utility = razorpay.Utility(None)
    secret = "rzp-webhook-secret"
    body = b'{"event":"payment.captured","payload":{"payment":{"entity":{"amount":4990}}}}'
    header = sign("razorpay", body, secret)["X-Razorpay-Signature"]
    assert utility.verify_webhook_signature(body.decode(), header, secret) is True
    with pytest.raises(razorpay.errors.SignatureVerificationError):
        utility.verify_webhook_signature(body.decode() + " ", header, secret)
    assert verdict("razorpay", body, secret, {"X-Razorpay-Signature": header}) == VALID
    assert verdict("razorpay", body + b" ", secret, {"X-Razorpay-Signature": header}) == INVALID
