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


def test_discord_agrees_with_pynacl():
    signing = pytest.importorskip("nacl.signing", reason="pynacl is not installed")
    key = signing.SigningKey.generate()
    seed, public = key.encode().hex(), key.verify_key.encode().hex()
    body = b'{"type":1,"id":"ping"}'
    headers = sign("discord", body, "seed:" + seed)
    message = headers["X-Signature-Timestamp"].encode() + body
    key.verify_key.verify(message, bytes.fromhex(headers["X-Signature-Ed25519"]))  # raises when it does not match
    theirs = key.sign(message).signature.hex()
    both = {"X-Signature-Ed25519": theirs, "X-Signature-Timestamp": headers["X-Signature-Timestamp"]}
    assert verdict("discord", body, public, both) == VALID
    assert verdict("discord", body + b" ", public, both) == INVALID
    assert verdict("discord", body, signing.SigningKey.generate().verify_key.encode().hex(), both) == INVALID
    assert sign("discord", body, public) == {}  # a public key checks; it cannot sign


def test_sendgrid_agrees_with_sendgrid(tmp_path):
    eventwebhook = pytest.importorskip("sendgrid.helpers.eventwebhook", reason="sendgrid is not installed")
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "key.pem").write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    public = base64.b64encode(private.public_key().public_bytes(serialization.Encoding.DER,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    body = b'[{"email":"a@example.com","event":"delivered","timestamp":1764345600}]'
    headers = sign("sendgrid", body, "pem:" + str(tmp_path / "key.pem"))
    helper = eventwebhook.EventWebhook()
    key = helper.convert_public_key_to_ecdsa(public)
    signature, timestamp = headers["X-Twilio-Email-Event-Webhook-Signature"], headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    assert helper.verify_signature(body.decode(), signature, timestamp, key)
    assert not helper.verify_signature(body.decode() + " ", signature, timestamp, key)
    assert verdict("sendgrid", body, public, dict(headers)) == VALID
    assert verdict("sendgrid", body + b" ", public, dict(headers)) == INVALID


def test_asymmetric_schemes_say_what_is_missing():
    assert verdict("discord", b"{}", "00" * 32, {"X-Signature-Ed25519": "ab"}).startswith("malformed")
    assert verdict("sendgrid", b"[]", "AAAA", {"X-Twilio-Email-Event-Webhook-Signature": "x",
                                               "X-Twilio-Email-Event-Webhook-Timestamp": "1"}) == "malformed"
    assert PROVIDERS["discord"].verify(SignedMessage("POST", URL, Headers([]), b"{}"), "00" * 32, NOW).status == "unsigned"


def test_hubspot_v3_agrees_with_hubspot_api_client():
    signature = pytest.importorskip("hubspot.utils.signature", reason="hubspot-api-client is not installed")
    import time

    secret = "hubspot-client-secret"
    body = b'[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]'
    url = "https://crm.example.com/hooks/hubspot?portal=42"
    now = time.time()  # the library checks the timestamp against the clock
    message = SignedMessage("POST", url, Headers([]), body)
    headers = PROVIDERS["hubspot"].sign(message, secret, now)
    assert signature.Signature.is_valid(signature=headers["X-HubSpot-Signature-v3"], client_secret=secret,
                                        request_body=body.decode(), http_uri=url, http_method="POST",
                                        signature_version="v3", timestamp=headers["X-HubSpot-Request-Timestamp"])
    theirs = signature.Signature.get_signature(secret, body.decode(), "v3", url, "POST",
                                               headers["X-HubSpot-Request-Timestamp"])
    signed_by_them = Headers([("X-HubSpot-Signature-v3", theirs),
                              ("X-HubSpot-Request-Timestamp", headers["X-HubSpot-Request-Timestamp"])])
    assert PROVIDERS["hubspot"].verify(SignedMessage("POST", url, signed_by_them, body), secret, now).status == VALID
    assert PROVIDERS["hubspot"].verify(SignedMessage("POST", url, signed_by_them, body + b" "), secret, now).status == INVALID


def test_paddle_agrees_with_paddle_python_sdk():
    notifications = pytest.importorskip("paddle_billing.Notifications", reason="paddle-python-sdk is not installed")
    import time

    class Request:  # what the SDK's Verifier reads: headers and a body
        def __init__(self, headers, body):
            self.headers, self.body, self.content, self.data = headers, body, body, body

    secret = "pdl_ntfset_01abc_secret"
    body = b'{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1"}}'
    now = time.time()  # the SDK allows 5 s of drift from the clock
    headers = PROVIDERS["paddle"].sign(SignedMessage("POST", URL, Headers([]), body), secret, now)
    verifier = notifications.Verifier()
    assert verifier.verify(Request(headers, body), notifications.Secret(secret)) is True
    assert verifier.verify(Request(headers, body + b" "), notifications.Secret(secret)) is False
    assert PROVIDERS["paddle"].verify(SignedMessage("POST", URL, Headers(list(headers.items())), body), secret, now).status == VALID
