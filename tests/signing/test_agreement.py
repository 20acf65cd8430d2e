"""hookinspect against the providers' own libraries, one row per provider and case.

Each library here is the provider's official one (the test extra, and the npm packages in
tests/signing/node). For every provider: hookinspect signs and the library accepts; the library
signs (or, where it has no signing function, its documented algorithm written out here) and
hookinspect says valid; then a tampered body, a wrong secret, stale and future timestamps, a
missing signature and a doubled signature header: the library accepts exactly what hookinspect
calls valid. A doubled header reaches the library as web frameworks give it, the first value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hookinspect.model import Delivery, Headers
from hookinspect.signing.base import VALID, SignedMessage
from hookinspect.signing.registry import PROVIDERS, Secrets, check_delivery, signed
from tests.factories import SENDGRID_KEY_NUMBERS, make_delivery, sendgrid_key

URL = "https://hooks.example.com/webhooks/in?src=1"
NODE_DIR = Path(__file__).parent / "node"
CASES = ("ours-signed", "library-signed", "tampered-body", "wrong-secret", "stale", "future", "missing",
         "doubled-forged-first", "doubled-genuine-first")
TIMED = ("stale", "future")


@dataclass
class Library:
    """One provider and its library: how the library signs and whether it accepts a request."""

    provider: str
    library: str  # the package, as installed
    module: str  # what importorskip needs (or "node:<package>")
    body: bytes
    secret: str  # what hookinspect is given (a public key for asymmetric schemes)
    wrong_secret: str
    signature_header: str | None  # None: the signature is in the body
    lib_sign: Callable[[bytes, str, float], tuple[dict[str, str], bytes]]
    lib_accepts: Callable[[bytes, dict[str, str], str, float], bool] | None = None  # None: node
    our_signing_secret: str | None = None  # when signing needs other material than verifying
    lib_signing_secret: Callable[[str], str] = field(default=lambda secret: secret)
    timed: bool = True
    window: bool = True  # False: the sender defines no time window, so an old signature stays good (Discord, SendGrid)
    content_type: str = "application/json"
    tamper: Callable[[bytes], bytes] = lambda body: body + b" "
    drop: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]] | None = None


def hmac_of(key: bytes, data: bytes, algorithm=hashlib.sha256) -> bytes:
    return hmac.new(key, data, algorithm).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def refusing(check: Callable[[], object]) -> bool:
    """A library that raises on a bad signature said no."""
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - each library has its own exception types
        return False


# -- the libraries ---------------------------------------------------------------------------

def _stripe() -> Library:
    import stripe

    def lib_sign(body, secret, now):
        return {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body.decode(), secret, int(now))}, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: stripe.WebhookSignature.verify_header(body, headers.get("stripe-signature"), secret, 300)
                        or True)
    return Library("stripe", f"stripe {stripe.VERSION}", "stripe", b'{"id":"evt_1","type":"payment_intent.succeeded"}',
                   "whsec_agree", "whsec_other", "Stripe-Signature", lib_sign, accepts)


def _svix_like(provider: str, module: str, body: bytes, prefix: str) -> Library:
    lib = pytest.importorskip(module)
    webhook_class = lib.webhooks.Webhook
    secret = "whsec_" + b64(b"agreement-key-of-thirty-two-byte")

    def lib_sign(body, secret, now):
        msg_id = "msg_2Lx1bq1NwF5mYhCq"
        signature = webhook_class(secret).sign(msg_id, datetime.fromtimestamp(int(now), UTC), body.decode())
        return {f"{prefix}id": msg_id, f"{prefix}timestamp": str(int(now)), f"{prefix}signature": signature}, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: webhook_class(secret).verify(body, headers) or True)  # raises when it refuses
    version = getattr(lib, "__version__", "") or _version(module)
    return Library(provider, f"{module} {version}", module, body, secret, "whsec_" + b64(b"another-key-of-thirty-two-bytes!"),
                   f"{prefix}signature", lib_sign, accepts)


def _slack() -> Library:
    from slack_sdk.signature import SignatureVerifier

    def lib_sign(body, secret, now):
        ts = str(int(now))
        return {"X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)}, body

    def accepts(body, headers, secret, now):
        return SignatureVerifier(secret).is_valid(body, headers.get("x-slack-request-timestamp"),
                                                  headers.get("x-slack-signature"))
    return Library("slack", f"slack_sdk {_version('slack_sdk')}", "slack_sdk",
                   b'{"type":"event_callback","api_app_id":"A1","event":{"type":"app_mention"}}',
                   "8f742231b10e8888abcd99yyyzzz85a5", "0000000000000000abcd99yyyzzz85a5", "X-Slack-Signature", lib_sign, accepts)


def _twilio() -> Library:
    from urllib.parse import parse_qsl

    from twilio.request_validator import RequestValidator

    def lib_sign(body, secret, now):
        params = dict(parse_qsl(body.decode()))
        return {"X-Twilio-Signature": RequestValidator(secret).compute_signature(URL, params)}, body

    def accepts(body, headers, secret, now):
        return RequestValidator(secret).validate(URL, dict(parse_qsl(body.decode())), headers.get("x-twilio-signature", ""))
    return Library("twilio", f"twilio {_version('twilio')}", "twilio",
                   b"AccountSid=AC123&From=%2B15005550006&Body=Hello&MessageSid=SM1", "12345", "54321",
                   "X-Twilio-Signature", lib_sign, accepts, timed=False,
                   content_type="application/x-www-form-urlencoded", tamper=lambda body: body.replace(b"Hello", b"Hallo"))


def _square() -> Library:
    helper = pytest.importorskip("square.utils.webhooks_helper")

    def lib_sign(body, secret, now):  # the library verifies only: its HMAC over URL + body, written out
        return {"x-square-hmacsha256-signature": b64(hmac_of(secret.encode(), URL.encode() + body))}, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: helper.verify_signature(request_body=body.decode(), signature_header=headers.get(
            "x-square-hmacsha256-signature", ""), signature_key=secret, notification_url=URL))
    return Library("square", f"squareup {_version('squareup')}", "square", b'{"type":"payment.updated","event_id":"e1"}',
                   "sq-signature-key", "sq-other-key", "x-square-hmacsha256-signature", lib_sign, accepts, timed=False)


def _razorpay() -> Library:
    razorpay = pytest.importorskip("razorpay")

    def lib_sign(body, secret, now):
        return {"X-Razorpay-Signature": hmac_of(secret.encode(), body).hex()}, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: razorpay.Utility(None).verify_webhook_signature(
            body.decode(), headers.get("x-razorpay-signature", ""), secret))
    return Library("razorpay", f"razorpay {_version('razorpay')}", "razorpay",
                   b'{"event":"payment.captured","payload":{"payment":{"entity":{"amount":4990}}}}',
                   "rzp-webhook-secret", "rzp-other-secret", "X-Razorpay-Signature", lib_sign, accepts, timed=False)


def _hubspot() -> Library:
    signature = pytest.importorskip("hubspot.utils.signature").Signature

    def lib_sign(body, secret, now):
        ts = str(int(now * 1000))
        return {"X-HubSpot-Request-Timestamp": ts,
                "X-HubSpot-Signature-v3": signature.get_signature(secret, body.decode(), "v3", URL, "POST", ts)}, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: signature.is_valid(signature=headers.get("x-hubspot-signature-v3", ""), client_secret=secret,
                                                   request_body=body.decode(), http_uri=URL, http_method="POST",
                                                   signature_version="v3",
                                                   timestamp=headers.get("x-hubspot-request-timestamp")))
    return Library("hubspot", f"hubspot-api-client {_version('hubspot-api-client')}", "hubspot",
                   b'[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]',
                   "hubspot-client-secret", "hubspot-other-secret", "X-HubSpot-Signature-v3", lib_sign, accepts)


def _paddle() -> Library:
    notifications = pytest.importorskip("paddle_billing.Notifications")

    class Request:  # what the SDK's Verifier reads
        def __init__(self, headers, body):
            self.headers, self.body = headers, body

    def lib_sign(body, secret, now):  # the SDK verifies only: ts:body under HMAC-SHA256, written out
        ts = str(int(now))
        return {"Paddle-Signature": f"ts={ts};h1={hmac_of(secret.encode(), ts.encode() + b':' + body).hex()}"}, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: notifications.Verifier().verify(Request({"Paddle-Signature": headers.get("paddle-signature")}
                                                                        if "paddle-signature" in headers else {}, body),
                                                                notifications.Secret(secret)))
    return Library("paddle", f"paddle-python-sdk {_version('paddle-python-sdk')}", "paddle_billing",
                   b'{"event_id":"evt_1","event_type":"transaction.completed","data":{"id":"txn_1"}}',
                   "pdl_ntfset_01abc_secret", "pdl_ntfset_01abc_other", "Paddle-Signature", lib_sign, accepts)


def _adyen() -> Library:
    util = pytest.importorskip("Adyen.util")
    item = {"additionalData": {"hmacSignature": ""}, "amount": {"currency": "EUR", "value": 4990},
            "eventCode": "AUTHORISATION", "eventDate": "2026-11-29T10:00:00+01:00", "merchantAccountCode": "ShopECOM",
            "merchantReference": "order-1042", "originalReference": "", "pspReference": "QFQTPCQ8HXSKGK82",
            "reason": "033899:1111:03/2030", "success": "true"}

    def lib_sign(body, secret, now):
        doc = json.loads(body)
        for wrapper in doc["notificationItems"]:
            plain = {k: v for k, v in wrapper["NotificationRequestItem"].items() if k != "additionalData"}
            wrapper["NotificationRequestItem"]["additionalData"]["hmacSignature"] = \
                util.generate_notification_sig(plain, secret).decode()
        return {}, json.dumps(doc).encode()

    def accepts(body, headers, secret, now):
        return refusing(lambda: util.is_valid_hmac_notification(json.loads(body), secret))

    def drop(body, headers):
        doc = json.loads(body)
        del doc["notificationItems"][0]["NotificationRequestItem"]["additionalData"]["hmacSignature"]
        return json.dumps(doc).encode(), headers
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}).encode()
    return Library("adyen", f"Adyen {_version('Adyen')}", "Adyen", body, "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
                   "00782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056", None, lib_sign, accepts, timed=False,
                   tamper=lambda body: body.replace(b'"value": 4990', b'"value": 1'), drop=drop)


def _box() -> Library:
    manager = pytest.importorskip("box_sdk_gen.managers.webhooks").WebhooksManager
    utils = pytest.importorskip("box_sdk_gen.internal.utils")

    def lib_sign(body, secret, now):
        headers = {"box-delivery-timestamp": datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "box-signature-version": "1", "box-signature-algorithm": "HmacSHA256"}
        headers["box-signature-primary"] = utils.compute_webhook_signature(body.decode(), headers, secret)
        return headers, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: manager.validate_message(body.decode(), headers, secret))
    return Library("box", f"boxsdk {_version('boxsdk')} (box_sdk_gen)", "box_sdk_gen",
                   b'{"type":"webhook_event","id":"e1","trigger":"FILE.UPLOADED","source":{"id":"1","type":"file"}}',
                   "SamX0tGa6KT2FZTe", "SamX0tGa6KT2FZTf", "box-signature-primary", lib_sign, accepts)


def _discord_pynacl() -> Library:
    signing = pytest.importorskip("nacl.signing")
    seed = bytes(range(32))
    key = signing.SigningKey(seed)
    public = key.verify_key.encode().hex()
    other = signing.SigningKey(bytes(range(1, 33)))

    def lib_sign(body, secret, now):
        signer = key if secret == public else other
        ts = str(int(now))
        return {"X-Signature-Timestamp": ts, "X-Signature-Ed25519": signer.sign(ts.encode() + body).signature.hex()}, body

    def accepts(body, headers, secret, now):
        return refusing(lambda: signing.VerifyKey(bytes.fromhex(secret)).verify(
            headers.get("x-signature-timestamp", "").encode() + body, bytes.fromhex(headers.get("x-signature-ed25519", ""))))
    return Library("discord", f"pynacl {_version('pynacl')}", "nacl", b'{"type":1,"id":"ping","application_id":"1"}',
                   public, other.verify_key.encode().hex(), "X-Signature-Ed25519", lib_sign, accepts, window=False,
                   our_signing_secret="seed:" + seed.hex())


def _sendgrid_keys():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    (private, public, pem), (other_private, other, _) = (sendgrid_key(n) for n in SENDGRID_KEY_NUMBERS)

    def lib_sign(body, secret, now):  # ECDSA P-256 over timestamp + body, as SendGrid signs
        signer = private if secret == public else other_private
        ts = str(int(now))
        return {"X-Twilio-Email-Event-Webhook-Timestamp": ts, "X-Twilio-Email-Event-Webhook-Signature":
                b64(signer.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256())))}, body
    return public, other, lib_sign, pem


def _sendgrid(tmp: Path) -> Library:
    eventwebhook = pytest.importorskip("sendgrid.helpers.eventwebhook")
    public, other, lib_sign, pem = _sendgrid_keys()
    (tmp / "sendgrid.pem").write_bytes(pem)

    def accepts(body, headers, secret, now):
        helper = eventwebhook.EventWebhook()
        return refusing(lambda: helper.verify_signature(
            body.decode(), headers.get("x-twilio-email-event-webhook-signature", ""),
            headers.get("x-twilio-email-event-webhook-timestamp", ""), helper.convert_public_key_to_ecdsa(secret)))
    return Library("sendgrid", f"sendgrid {_version('sendgrid')}", "sendgrid",
                   b'[{"email":"a@example.com","event":"delivered","timestamp":1764345600}]', public, other,
                   "X-Twilio-Email-Event-Webhook-Signature", lib_sign, accepts, window=False,
                   our_signing_secret="pem:" + str(tmp / "sendgrid.pem"))


# -- the npm packages, asked in one batch ----------------------------------------------------

def _node_discord() -> Library:
    library = _discord_pynacl()
    library.library, library.module, library.lib_accepts = "discord-interactions (npm)", "node:discord-interactions", None
    return library


def _node_sendgrid(tmp: Path) -> Library:
    public, other, lib_sign, pem = _sendgrid_keys()
    (tmp / "sendgrid-node.pem").write_bytes(pem)
    return Library("sendgrid", "@sendgrid/eventwebhook (npm)", "node:@sendgrid/eventwebhook",
                   b'[{"email":"a@example.com","event":"delivered","timestamp":1764345600}]', public, other,
                   "X-Twilio-Email-Event-Webhook-Signature", lib_sign, None, window=False,
                   our_signing_secret="pem:" + str(tmp / "sendgrid-node.pem"))


def _node_linear() -> Library:
    def lib_sign(body, secret, now):  # the SDK verifies only: HMAC-SHA256 hex of the body with its webhookTimestamp
        doc = json.loads(body)
        doc["webhookTimestamp"] = int(now * 1000)
        body = json.dumps(doc).encode()
        return {"Linear-Signature": hmac_of(secret.encode(), body).hex()}, body
    return Library("linear", "@linear/sdk (npm)", "node:@linear/sdk",
                   b'{"action":"create","type":"Issue","data":{"id":"i1","title":"Bug"},"webhookTimestamp":0}',
                   "lin_wh_secret", "lin_wh_other", "Linear-Signature", lib_sign, None)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def library_for(key: str, tmp: Path) -> Library:
    makers = {
        "stripe": _stripe, "slack": _slack, "twilio": _twilio, "square": _square, "razorpay": _razorpay,
        "hubspot": _hubspot, "paddle": _paddle, "adyen": _adyen, "box": _box, "discord": _discord_pynacl,
        "sendgrid": lambda: _sendgrid(tmp), "node-discord": _node_discord, "node-sendgrid": lambda: _node_sendgrid(tmp),
        "node-linear": _node_linear,
        "standard": lambda: _svix_like("standard", "standardwebhooks", b'{"type":"invoice.paid","data":{"id":"in_1"}}',
                                       "webhook-"),
        "svix": lambda: _svix_like("svix", "svix", b'{"type":"user.created","data":{"id":"u1"}}', "svix-"),
        "clerk": lambda: _svix_like("clerk", "svix", b'{"object":"event","type":"user.created","data":{"id":"user_1"}}',
                                    "svix-"),
        "resend": lambda: _svix_like("resend", "svix", b'{"type":"email.delivered","data":{"email_id":"e1"}}', "svix-"),
    }
    if key in ("stripe", "slack", "twilio"):
        pytest.importorskip({"stripe": "stripe", "slack": "slack_sdk", "twilio": "twilio"}[key])
    return makers[key]()


LIBRARIES = ("stripe", "standard", "svix", "clerk", "resend", "slack", "twilio", "square", "razorpay", "hubspot", "paddle",
             "adyen", "box", "discord", "sendgrid", "node-discord", "node-sendgrid", "node-linear")


# -- one request per case ----------------------------------------------------------------------

def first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Headers as a web framework hands them to a library: lower-case names, the first value."""
    out: dict[str, str] = {}
    for name, value in pairs:
        out.setdefault(name.lower(), value)
    return out


def request_for(library: Library, case: str, now: float) -> tuple[bytes, list[tuple[str, str]]]:
    body = library.body
    if case == "ours-signed":
        message = signed(PROVIDERS[library.provider], SignedMessage("POST", URL, Headers([("Content-Type", library.content_type)]),
                                                                    body), library.our_signing_secret or library.secret, now)
        return message.body, message.headers.pairs()
    when = {"stale": now - 3600, "future": now + 3600}.get(case, now)
    secret = library.wrong_secret if case == "wrong-secret" else library.secret
    headers, body = library.lib_sign(body, library.lib_signing_secret(secret), when)
    pairs = list(headers.items())
    if case == "tampered-body":
        body = library.tamper(body)
    elif case == "missing":
        if library.drop is not None:
            body, headers = library.drop(body, headers)
            pairs = list(headers.items())
        else:
            pairs = [(k, v) for k, v in pairs if k.lower() != library.signature_header.lower()]
    elif case.startswith("doubled"):
        genuine = headers[library.signature_header]
        forged, _ = library.lib_sign(body, library.lib_signing_secret(library.wrong_secret), now)
        twice = [forged[library.signature_header], genuine]
        if case == "doubled-genuine-first":
            twice.reverse()
        pairs = [(k, v) for k, v in pairs if k != library.signature_header] + \
                [(library.signature_header, value) for value in twice]
    return body, pairs


def our_verdict(library: Library, case: str, body: bytes, pairs: list[tuple[str, str]], now: float) -> str:
    delivery: Delivery = make_delivery(body, path="/webhooks/in", query="src=1", content_type=library.content_type,
                                       headers=pairs)
    secrets = Secrets()
    secrets.add(library.provider, library.secret)
    result = check_delivery(delivery, secrets, now=now, url=URL)
    if result.provider is None and case == "missing":  # nothing left to detect it by: judged as that provider
        result = check_delivery(delivery, secrets, now=now, url=URL, provider=library.provider)
    assert result.provider == library.provider, f"{case}: detected as {result.provider}"
    return result.verdict.status if result.verdict else "none"


def applicable(library: Library, case: str) -> bool:
    if case in TIMED and not library.timed:
        return False
    return not (case.startswith("doubled") and library.signature_header is None)


def node_answers(requests: list[dict]) -> list[bool]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.skip("the npm libraries are not installed (npm ci --prefix tests/signing/node)")
    done = subprocess.run(["node", str(NODE_DIR / "verify.mjs")], input=json.dumps(requests), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("key", LIBRARIES)
def test_the_library_accepts_exactly_what_hookinspect_calls_valid(key, tmp_path, record_property):
    library = library_for(key, tmp_path)
    now = time.time()  # the libraries check timestamps against the clock
    rows = [(case, *request_for(library, case, now)) for case in CASES if applicable(library, case)]
    ours = [our_verdict(library, case, body, pairs, now) for case, body, pairs in rows]
    if library.lib_accepts is None:
        theirs = node_answers([{"library": library.module.removeprefix("node:"), "body": b64(body),
                                "headers": first_values(pairs), "key": library.secret} for _, body, pairs in rows])
    else:
        theirs = [library.lib_accepts(body, first_values(pairs), library.secret, now) for _, body, pairs in rows]
    table = {case: (mine, accepted) for (case, _, _), mine, accepted in zip(rows, ours, theirs, strict=True)}
    record_property("agreement", json.dumps({"provider": library.provider, "library": library.library,
                                             "cases": {case: [mine, accepted] for case, (mine, accepted) in table.items()}}))
    disagreements = {case: pair for case, pair in table.items() if (pair[0] == VALID) != pair[1]}
    assert not disagreements, f"{library.library}: hookinspect / library disagree: {disagreements}"
    # And the cases say what they should: genuine ones pass, every altered one is refused.
    assert table["ours-signed"] == (VALID, True) and table["library-signed"] == (VALID, True)
    # A future timestamp is a library's choice (Stripe's and HubSpot's accept one); the rest are refused.
    accepted = {"ours-signed", "library-signed", "doubled-genuine-first", "future"} | (set() if library.window else {"stale"})
    refused = [case for case in table if case not in accepted]
    assert all(not table[case][1] for case in refused), table
