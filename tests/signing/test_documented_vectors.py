"""Worked examples the providers publish, reproduced byte for byte: hookinspect calls each valid,
and invalid once one byte of it changes."""

import json

import pytest

from hookinspect.model import Headers
from hookinspect.signing.base import INVALID, VALID, SignedMessage
from hookinspect.signing.registry import PROVIDERS

SLACK_BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
              b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
              b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
              b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
# Adyen's example item: its signing string is
# 7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true
ADYEN_BODY = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": {
    "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
    "amount": {"currency": "EUR", "value": 1130}, "eventCode": "AUTHORISATION", "merchantAccountCode": "TestMerchant",
    "merchantReference": "TestPayment-1407325143704", "originalReference": "", "pspReference": "7914073381342284",
    "success": "true"}}]}).encode()

VECTORS = [
    # GitHub, "Validating webhook deliveries": the secret, the payload and the expected header.
    ("github", "It's a Secret to Everybody", b"Hello, World!", 0,
     [("X-GitHub-Event", "ping"),
      ("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")]),
    # Slack, "Verifying requests from Slack": a slash command's form body at timestamp 1531420618.
    ("slack", "8f742231b10e8888abcd99yyyzzz85a5", SLACK_BODY, 1531420618,
     [("Content-Type", "application/x-www-form-urlencoded"), ("X-Slack-Request-Timestamp", "1531420618"),
      ("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")]),
    # Standard Webhooks, the specification's example (also in its libraries' tests).
    ("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b'{"test": 2432232314}', 1614265330,
     [("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ("webhook-timestamp", "1614265330"),
      ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")]),
    # Adyen, "Verify HMAC signatures": the example key and notification item.
    ("adyen", "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056", ADYEN_BODY, 0,
     [("Content-Type", "application/json")]),
]


@pytest.mark.parametrize("provider, secret, body, now, headers", VECTORS, ids=[v[0] for v in VECTORS])
def test_a_published_example_is_valid_and_one_changed_byte_is_not(provider, secret, body, now, headers):
    def verdict(body_):
        return PROVIDERS[provider].verify(SignedMessage("POST", "https://example.com/hook", Headers(headers), body_),
                                          secret, now).status
    assert verdict(body) == VALID
    changed = body.replace(b"1130", b"1131") if provider == "adyen" else body[:-1] + bytes([body[-1] ^ 1])
    assert verdict(changed) == INVALID
