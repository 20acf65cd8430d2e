"""Our signature verdicts against the providers' own libraries, over a corpus of real payloads.

For every payload of a signing provider in `--corpus` (a directory with a MANIFEST.tsv of
file, provider, event type and content type per line), the provider's official library signs
it, and then five requests are judged both by that library and by hookinspect (detection
included, as on capture): correctly signed, body changed by one byte, signed with another
secret, signed an hour ago, and with no signature header. A case agrees when the library
accepts exactly what hookinspect calls `valid`. GitHub and Shopify publish no Python library:
their documented algorithm, written out here independently of ours, stands in.

    python bench/verdicts.py --corpus PATH/TO/corpus

Needs the test extra (stripe, slack_sdk, twilio, standardwebhooks, svix).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import hmac
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import stripe  # noqa: E402
from slack_sdk.signature import SignatureVerifier  # noqa: E402
from standardwebhooks.webhooks import Webhook as StandardWebhook  # noqa: E402
from svix.webhooks import Webhook as SvixWebhook  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from hookinspect.model import Delivery, Headers  # noqa: E402
from hookinspect.signing.registry import Secrets, check_delivery  # noqa: E402

URL_BASE = "https://hooks.example.com"
SECRETS = {"stripe": "whsec_corpus", "slack": "8f742231b10e8888abcd99yyyzzz85a5", "twilio": "12345",
           "standard": "whsec_" + base64.b64encode(b"corpus-key-32-bytes-long-padding").decode(),
           "svix": "whsec_" + base64.b64encode(b"svix-corpus-key-32-bytes-padding").decode(),
           "github": "It's a Secret to Everybody", "shopify": "shpss_corpus"}
WRONG = {name: secret[:-4] + "XXXX" for name, secret in SECRETS.items()}
# Headers a scheme's sign() adds besides the signature itself: "no signature" keeps them.
SENDER_HEADERS = {"User-Agent", "X-Shopify-Shop-Domain", "X-Slack-Request-Timestamp", "webhook-id", "webhook-timestamp",
                  "svix-id", "svix-timestamp"}
CASES = ("signed", "body changed", "other secret", "an hour old", "no signature")


class Request:
    """One request as a sender makes it: path, headers, body; plus what the library says of it."""

    def __init__(self, path: str, headers: list[tuple[str, str]], body: bytes, accepted: bool) -> None:
        self.path, self.headers, self.body, self.accepted = path, headers, body, accepted


# Each scheme: (provider name for our secrets, make(body, content_type, event, secret, at) -> headers,
# library_accepts(path, headers, body, secret, now) -> bool, path)
def _stripe_sign(body: bytes, secret: str, at: int) -> list[tuple[str, str]]:
    mac = stripe.WebhookSignature._compute_signature(f"{at}.{body.decode()}", secret)  # noqa: SLF001 - the library's own MAC
    return [("Stripe-Signature", f"t={at},v1={mac}"), ("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")]


def _stripe_accepts(path: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body.decode(), headers.get("stripe-signature", ""), secret, tolerance=300)
        return True
    except stripe.SignatureVerificationError:
        return False


def _slack_sign(body: bytes, secret: str, at: int) -> list[tuple[str, str]]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(at), body=body.decode())
    return [("X-Slack-Request-Timestamp", str(at)), ("X-Slack-Signature", signature or ""),
            ("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")]


def _slack_accepts(path: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    return SignatureVerifier(secret).is_valid(body.decode(), headers.get("x-slack-request-timestamp", ""),
                                              headers.get("x-slack-signature", ""))


def _twilio_params(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def _twilio_sign(body: bytes, secret: str, at: int) -> list[tuple[str, str]]:
    return [("X-Twilio-Signature", RequestValidator(secret).compute_signature(URL_BASE + "/twilio/sms",
                                                                               _twilio_params(body))),
            ("User-Agent", "TwilioProxy/1.1")]


def _twilio_accepts(path: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    return RequestValidator(secret).validate(URL_BASE + path, _twilio_params(body), headers.get("x-twilio-signature", ""))


def _standard_sign(library: type, prefix: str) -> Callable[[bytes, str, int], list[tuple[str, str]]]:
    def sign(body: bytes, secret: str, at: int) -> list[tuple[str, str]]:
        msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:24]
        signature = library(secret).sign(msg_id, datetime.fromtimestamp(at, UTC), body.decode())
        return [(f"{prefix}-id", msg_id), (f"{prefix}-timestamp", str(at)), (f"{prefix}-signature", signature)]
    return sign


def _standard_accepts(library: type) -> Callable[[str, dict[str, str], bytes, str], bool]:
    def accepts(path: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
        try:
            library(secret).verify(body, headers)
            return True
        except Exception:  # noqa: BLE001 - each library raises its own verification error
            return False
    return accepts


def _github_sign(body: bytes, secret: str, at: int) -> list[tuple[str, str]]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return [("X-Hub-Signature-256", f"sha256={mac}"), ("User-Agent", "GitHub-Hookshot/abc123")]


def _github_accepts(path: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    # docs.github.com "Validating webhook deliveries": HMAC-SHA256 of the body, hex, "sha256=" prefix.
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-hub-signature-256", ""))


def _shopify_sign(body: bytes, secret: str, at: int) -> list[tuple[str, str]]:
    mac = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return [("X-Shopify-Hmac-Sha256", mac), ("X-Shopify-Shop-Domain", "shop.myshopify.com")]


def _shopify_accepts(path: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    # shopify.dev "Verify webhooks": HMAC-SHA256 of the body, base64.
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, headers.get("x-shopify-hmac-sha256", ""))


SCHEMES = {
    "stripe": ("stripe", _stripe_sign, _stripe_accepts, "/stripe/webhook", "stripe"),
    "slack": ("slack", _slack_sign, _slack_accepts, "/slack/events", "slack_sdk"),
    "twilio": ("twilio", _twilio_sign, _twilio_accepts, "/twilio/sms", "twilio"),
    "standardwebhooks": ("standard", _standard_sign(StandardWebhook, "webhook"), _standard_accepts(StandardWebhook),
                         "/hooks", "standardwebhooks"),
    "svix": ("svix", _standard_sign(SvixWebhook, "svix"), _standard_accepts(SvixWebhook), "/hooks", "svix"),
    "github": ("github", _github_sign, _github_accepts, "/github", "documented algorithm"),
    "github-form": ("github", _github_sign, _github_accepts, "/github", "documented algorithm"),
    "shopify": ("shopify", _shopify_sign, _shopify_accepts, "/shopify/orders", "documented algorithm"),
}


def event_headers(provider: str, event: str) -> list[tuple[str, str]]:
    if provider.startswith("github"):
        return [("X-GitHub-Event", event.split(".")[0]), ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")]
    if provider == "shopify":
        return [("X-Shopify-Topic", event)]
    return []


def cases(provider: str, body: bytes, content_type: str, event: str, now: int) -> list[tuple[str, Request]]:
    name, sign, accepts, path, _ = SCHEMES[provider]
    secret = SECRETS[name]
    base = [("Host", "hooks.example.com"), ("X-Forwarded-Proto", "https"), ("Content-Type", content_type),
            *event_headers(provider, event)]

    def request(headers: list[tuple[str, str]], sent: bytes) -> Request:
        lowered = {k.lower(): v for k, v in headers}
        try:
            accepted = accepts(path, lowered, sent, secret)
        except Exception:  # noqa: BLE001 - a library that fails on a missing header rejects the request
            accepted = False
        return Request(path, headers, sent, accepted)

    signed = sign(body, secret, now)
    changed = body + b" " if not body.endswith(b" ") else body[:-1]
    return [
        ("signed", request(base + signed, body)),
        ("body changed", request(base + signed, changed)),
        ("other secret", request(base + sign(body, WRONG[name], now), body)),
        ("an hour old", request(base + sign(body, secret, now - 3600), body)),
        ("no signature", request(base + [h for h in signed if h[0] in SENDER_HEADERS], body)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--show", type=int, default=10, help="disagreements to print")
    args = parser.parse_args()
    secrets = Secrets()
    for name, secret in SECRETS.items():
        secrets.add(name, secret)
    rows = list(csv.DictReader((args.corpus / "MANIFEST.tsv").open(encoding="utf-8"), delimiter="\t"))
    now = int(time.time())
    agree: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    ours: Counter[tuple[str, str]] = Counter()
    disagreements = []
    payloads: Counter[str] = Counter()
    for row in rows:
        provider = row["provider"]
        kinds = ["standardwebhooks", "svix"] if provider == "standardwebhooks" else [provider]
        for kind in kinds:
            if kind not in SCHEMES:
                continue
            body = (args.corpus / row["file"]).read_bytes()
            payloads[kind] += 1
            for case, request in cases(kind, body, row["content_type"], row["event_type"], now):
                delivery = Delivery(method="POST", path=request.path, headers=Headers(request.headers), body=request.body)
                verdict = check_delivery(delivery, secrets, now=now).verdict
                status = verdict.status if verdict else "none"
                ours[(kind, status)] += 1
                total[(kind, case)] += 1
                if request.accepted == (status == "valid"):
                    agree[(kind, case)] += 1
                else:
                    disagreements.append((kind, row["file"], case, request.accepted, status,
                                          verdict.reason if verdict else ""))
    print(f"corpus: {sum(payloads.values())} signed payloads, {len(CASES)} cases each, judged by the provider's "
          "library and by hookinspect")
    print(f"{'provider':17} {'judge':21} {'payloads':>8}  " + "  ".join(f"{c:>12}" for c in CASES))
    for kind, count in payloads.items():
        cells = "  ".join(f"{agree[(kind, c)]:>5}/{total[(kind, c)]:<6}" for c in CASES)
        print(f"{kind:17} {SCHEMES[kind][4]:21} {count:>8}  {cells}")
    all_agree, all_total = sum(agree.values()), sum(total.values())
    print(f"agreement: {all_agree} of {all_total} cases")
    print("hookinspect's verdicts: " + ", ".join(f"{kind} {status} {n}" for (kind, status), n in sorted(ours.items())))
    for kind, file, case, accepted, status, reason in disagreements[:args.show]:
        print(f"  DISAGREE {kind} {file} [{case}]: library {'accepts' if accepted else 'rejects'}, "
              f"hookinspect {status}: {reason}")
    sys.exit(0 if all_agree == all_total else 1)


if __name__ == "__main__":
    main()
