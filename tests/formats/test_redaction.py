"""Redaction that holds: every planted secret is absent from every export format."""

import base64
import json

import pytest

from hookinspect.formats.export import EXPORTERS, export
from hookinspect.formats.redaction import Redaction, redact_url
from hookinspect.model import Attempt, ExportItem, Headers, Response, SentRequest
from tests.factories import make_delivery

# Each value is unique, so finding it anywhere in an output means it leaked.
SECRETS = {
    "Authorization": "Bearer sekret-authorization-1",
    "Cookie": "session=sekret-cookie-2",
    "Stripe-Signature": "t=1,v1=sekret-stripe-3",
    "X-Gitlab-Token": "sekret-gitlab-4",
    "X-Auth-Token": "sekret-auth-5",
    "X-Webhook-Secret": "sekret-webhook-6",
    "X-Hubspot-Signature-V3": "sekret-hubspot-7",
    "X-Custom-Api-Key": "sekret-apikey-8",
}
QUERY_SECRETS = {"token": "sekret-query-token-9", "code": "sekret-oauth-code-10",
                 "client_secret": "sekret-client-11", "access_token": "sekret-access-12"}
BODY_SECRET = "sekret-email-13@example.com"
ATTEMPT_SECRETS = ["Bearer sekret-attempt-auth-14", "sekret-attempt-url-15", "sekret-set-cookie-16",
                   "sekret-userinfo-17", "sekret-attempt-body-18@example.com"]
ALL = [*SECRETS.values(), *QUERY_SECRETS.values(), BODY_SECRET, *ATTEMPT_SECRETS]
RULES = Redaction.from_config({"json": ["$.data.object.customer_email"]})


def planted() -> ExportItem:
    body = json.dumps({"type": "charge.succeeded", "data": {"object": {"customer_email": BODY_SECRET}}}).encode()
    query = "&".join(f"{k}={v}" for k, v in QUERY_SECRETS.items()) + "&page=2"
    delivery = make_delivery(body, headers=[("Host", "hooks.example"), *SECRETS.items()], query=query)
    delivery.seq = 7
    sent_body = json.dumps({"data": {"object": {"customer_email": ATTEMPT_SECRETS[4]}}}).encode()
    url = f"http://user:{ATTEMPT_SECRETS[3]}@backend.example/hook?token={ATTEMPT_SECRETS[1]}"
    attempt = Attempt(
        delivery_seq=7, kind="replay", target_url=url, number=1,
        request=SentRequest(method="POST", url=url, body=sent_body,
                            headers=Headers([("Authorization", ATTEMPT_SECRETS[0]), ("Content-Type", "application/json")])),
        response=Response(status=200, headers=Headers([("Set-Cookie", f"sid={ATTEMPT_SECRETS[2]}")]), body=b"{}"),
    )
    return ExportItem(delivery, [attempt])


def leaked(output: str | bytes) -> list[str]:
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    # Bodies may travel as base64 (curl, httpie): decode every base64-looking word too.
    decoded = []
    for word in text.replace("'", " ").split():
        try:
            decoded.append(base64.b64decode(word, validate=True).decode("utf-8", "replace"))
        except ValueError:
            continue
    haystack = text + "\n".join(decoded)
    return [secret for secret in ALL if secret in haystack]


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_every_planted_secret_is_absent_from_every_format(fmt):
    output, masked = export([planted()], fmt, redact_secrets=True, rules=RULES)
    assert leaked(output) == []
    assert len(masked) >= len(SECRETS) + len(QUERY_SECRETS) + 1  # what the user is told was masked


def test_without_redaction_the_secrets_are_there():
    """The check above can fail: the same grep finds every secret in an unredacted JSON export."""
    output, masked = export([planted()], "json", redact_secrets=False)
    assert leaked(output) == ALL and masked == []


def test_har_json_and_fixture_redact_by_default_and_curl_does_not():
    for fmt in ("har", "json", "fixture"):
        assert leaked(export([planted()], fmt, rules=RULES)[0]) == []
    assert leaked(export([planted()], "curl")[0])  # a command meant to resend the exact request


def test_user_info_and_secret_query_values_leave_urls():
    url, masked = redact_url("https://me:pw@h.example/p?a=1&Token=t&x=2")
    assert url == "https://REDACTED@h.example/p?a=1&Token=REDACTED&x=2" and len(masked) == 2
