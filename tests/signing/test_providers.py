"""Our signatures against the providers' own libraries, and our verdicts on what they produce."""

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook
from twilio.request_validator import RequestValidator

from hookinspect.model import Headers
from hookinspect.signing import github, shopify, slack, standard, twilio
from hookinspect.signing import stripe as stripe_scheme
from hookinspect.signing.base import EXPIRED, INVALID, MALFORMED, UNSIGNED, VALID, SignedMessage

BODY = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {"amount": 1200}}}).encode()
STANDARD_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def message(headers, body=BODY, url="https://hooks.example.com/in", method="POST"):
    return SignedMessage(method, url, Headers(headers), body)


class Clock:
    def __init__(self, now):
        self.value = now

    def now(self):
        return self.value


def test_stripe_sign_passes_the_official_library():
    secret, now = "whsec_test_secret", time.time()
    headers = stripe_scheme.sign(message([]), secret, now)
    event = stripe.Webhook.construct_event(BODY, headers["Stripe-Signature"], secret)
    assert event["type"] == "invoice.paid"


def test_stripe_verdicts_on_library_made_headers():
    secret, now = "whsec_test_secret", int(time.time())
    payload = f"{now}.".encode() + BODY
    good = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    header = stripe.WebhookSignature._compute_signature(f"{now}.{BODY.decode()}", secret)  # the library's own MAC
    assert header == good
    assert stripe_scheme.verify(message([("Stripe-Signature", f"t={now},v1={good}")]), secret, now).status == VALID
    rotated = f"t={now},v1={'0' * 64},v1={good}"
    assert stripe_scheme.verify(message([("Stripe-Signature", rotated)]), secret, now).status == VALID
    tampered = stripe_scheme.verify(message([("Stripe-Signature", f"t={now},v1={good}")], BODY + b" "), secret, now)
    assert tampered.status == INVALID and "body differs" in tampered.reason
    stale = stripe_scheme.verify(message([("Stripe-Signature", f"t={now},v1={good}")]), secret, now + 812)
    assert stale.status == EXPIRED and stale.reason == "timestamp 812 s old, tolerance 300 s"
    assert stripe_scheme.verify(message([("Stripe-Signature", "garbage")]), secret, now).status == MALFORMED
    assert stripe_scheme.verify(message([]), secret, now).status == UNSIGNED
    api_key = stripe_scheme.verify(message([("Stripe-Signature", f"t={now},v1={good}")]), "sk_test_123", now)
    assert api_key.status == INVALID and "API key" in api_key.reason


def test_github_matches_the_published_algorithm():
    secret = "It's a Secret to Everybody"
    body = b"Hello, World!"
    # GitHub's documented test vector
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github.sign(message([], body), secret, 0)["X-Hub-Signature-256"] == expected
    assert github.verify(message([("X-Hub-Signature-256", expected)], body), secret, 0).status == VALID
    assert github.verify(message([("X-Hub-Signature-256", expected)], body + b"!"), secret, 0).status == INVALID
    assert github.verify(message([("X-Hub-Signature-256", "md5=x")], body), secret, 0).status == MALFORMED
    legacy = github.sign(message([], body), secret, 0)["X-Hub-Signature"]
    # GitHub's libraries (octokit's verify) check only X-Hub-Signature-256: SHA-1 alone is not valid there.
    only_sha1 = github.verify(message([("X-Hub-Signature", legacy)], body), secret, 0)
    assert only_sha1.status == UNSIGNED and "SHA-1, which matches" in only_sha1.reason
    wrong_sha1 = github.verify(message([("X-Hub-Signature", "sha1=00")], body), secret, 0)
    assert wrong_sha1.status == UNSIGNED and "does not match" in wrong_sha1.reason


def test_github_is_detected_without_its_event_header():
    bare = SignedMessage("POST", "http://h/", Headers([("User-Agent", "GitHub-Hookshot/abc123")]), b"{}")
    assert github.detect(bare).provider == "github"
    by_signature = SignedMessage("POST", "http://h/", Headers([("X-Hub-Signature-256", "sha256=00")]), b"{}")
    assert github.detect(by_signature).provider == "github"
    assert github.detect(SignedMessage("POST", "http://h/", Headers([]), b"{}")) is None


def test_shopify_matches_the_published_algorithm():
    secret = "shpss_secret"
    digest = base64.b64encode(hmac.new(secret.encode(), BODY, hashlib.sha256).digest()).decode()
    assert shopify.sign(message([]), secret, 0) == {"X-Shopify-Hmac-Sha256": digest}
    assert shopify.verify(message([("X-Shopify-Hmac-Sha256", digest)]), secret, 0).status == VALID
    assert shopify.verify(message([("shopify-hmac-sha256", digest)]), secret, 0).status == VALID
    assert shopify.verify(message([("X-Shopify-Hmac-Sha256", digest)]), "other", 0).status == INVALID


@pytest.mark.parametrize("scheme,library,prefix", [
    ("standard", StandardWebhook, "webhook-"), ("svix", SvixWebhook, "svix-"),
])
def test_standard_webhooks_and_svix_against_their_libraries(scheme, library, prefix):
    now = time.time()
    sign = standard.sign_standard if scheme == "standard" else standard.sign_svix
    verify = standard.verify_standard if scheme == "standard" else standard.verify_svix
    headers = sign(message([]), STANDARD_SECRET, now)
    library(STANDARD_SECRET).verify(BODY, headers)  # raises if wrong
    made = library(STANDARD_SECRET).sign("msg_abc", datetime.fromtimestamp(int(now), UTC), BODY.decode())
    theirs = [(f"{prefix}id", "msg_abc"), (f"{prefix}timestamp", str(int(now))), (f"{prefix}signature", made)]
    assert verify(message(theirs), STANDARD_SECRET, now).status == VALID
    rotated = [*theirs[:2], (f"{prefix}signature", f"v1,{base64.b64encode(b'x' * 32).decode()} {made}")]
    assert verify(message(rotated), STANDARD_SECRET, now).status == VALID
    assert verify(message(theirs, BODY + b"x"), STANDARD_SECRET, now).status == INVALID
    assert verify(message(theirs), STANDARD_SECRET, now + 400).status == EXPIRED
    assert verify(message(theirs), STANDARD_SECRET, now - 400).status == EXPIRED  # future: also rejected
    assert verify(message(theirs[:2] + [(f"{prefix}signature", "v2,zzz")]), STANDARD_SECRET, now).status == MALFORMED
    assert "not base64" in verify(message(theirs), "whsec_!!!", now).reason


def test_slack_against_slack_sdk():
    secret, now = "8f742231b10e8888abcd99yyyzzz85a5", int(time.time())
    headers = slack.sign(message([]), secret, now)
    verifier = SignatureVerifier(secret, clock=Clock(now))
    assert verifier.is_valid(BODY, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    theirs = verifier.generate_signature(timestamp=str(now), body=BODY)
    pairs = [("X-Slack-Request-Timestamp", str(now)), ("X-Slack-Signature", theirs)]
    assert slack.verify(message(pairs), secret, now).status == VALID
    assert slack.verify(message(pairs), secret, now + 301).status == EXPIRED
    assert slack.verify(message(pairs), secret, now - 301).status == EXPIRED
    assert slack.verify(message(pairs, b"x"), secret, now).status == INVALID


def test_twilio_form_and_json_against_the_request_validator():
    token = "12345"
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    form = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212"
    validator = RequestValidator(token)
    params = dict(pair.split("=") for pair in form.decode().replace("%2B", "+").split("&"))
    ours = twilio.sign(message([("Content-Type", "application/x-www-form-urlencoded")], form, url), token, 0)
    assert validator.validate(url, params, ours["X-Twilio-Signature"])
    theirs = validator.compute_signature(url, params)
    pairs = [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", theirs)]
    assert twilio.verify(message(pairs, form, url), token, 0).status == VALID
    assert twilio.verify(message(pairs, form, "https://mycompany.com:443/myapp.php?foo=1&bar=2"), token, 0).status == VALID
    wrong_url = twilio.verify(message(pairs, form, "https://other.example/x"), token, 0)
    assert wrong_url.status == INVALID and "exact public URL" in wrong_url.reason
    body = b'{"property": "value", "boolean": true}'
    json_url = f"https://mycompany.com/myapp?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signed = twilio.sign(message([("Content-Type", "application/json")], body, json_url), token, 0)
    assert validator.validate(json_url, body.decode(), signed["X-Twilio-Signature"])
    pairs = [("Content-Type", "application/json"), ("X-Twilio-Signature", signed["X-Twilio-Signature"])]
    assert twilio.verify(message(pairs, body, json_url), token, 0).status == VALID
    assert "bodySHA256" in twilio.verify(message(pairs, body + b" ", json_url), token, 0).reason
