import base64
import time

import pytest

from hookinspect.errors import UsageError
from hookinspect.formats.samples import build_sample_request, list_samples
from hookinspect.model import Headers, SentRequest
from hookinspect.signing.base import VERDICTS, SignedMessage
from hookinspect.signing.registry import (
    PROVIDERS,
    Secrets,
    annotate_delivery,
    check_delivery,
    may_be_from_a_provider,
    resigner_for,
)
from tests.factories import SENDGRID_KEY_NUMBERS, make_delivery, sendgrid_key

SECRETS = {"stripe": "whsec_stripe", "github": "gh-secret", "shopify": "shpss_x", "slack": "slack-secret",
           "twilio": "twilio-token", "standard": "whsec_" + base64.b64encode(b"s" * 24).decode(),
           "svix": "whsec_" + base64.b64encode(b"v" * 24).decode(),
           "clerk": "whsec_" + base64.b64encode(b"c" * 24).decode(), "resend": "whsec_" + base64.b64encode(b"r" * 24).decode(),
           "adyen": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056", "discord": "seed:" + "11" * 32}
# Secrets of the same form that are not the right one.
WRONG = {"standard": SECRETS["svix"], "svix": SECRETS["standard"], "clerk": SECRETS["svix"], "resend": SECRETS["svix"],
         "adyen": "00" * 32, "discord": "seed:" + "22" * 32}


def sendgrid_keys(tmp_path):
    """Two PEM private keys for SendGrid's ECDSA: the signer and a stranger."""
    paths = []
    for name, number in zip(("right", "wrong"), SENDGRID_KEY_NUMBERS, strict=True):
        path = tmp_path / f"sendgrid-{name}.pem"
        path.write_bytes(sendgrid_key(number)[2])
        paths.append("pem:" + str(path))
    return paths


def secret_pair(provider, tmp_path):
    """(the provider's secret, a wrong one of the same form)."""
    if provider == "sendgrid":
        return tuple(sendgrid_keys(tmp_path))
    right = SECRETS.get(provider, f"{provider}-signing-secret")
    return right, WRONG.get(provider, "not-" + right)


def delivery_from_sample(sample, secret):
    request = build_sample_request(sample, "http://127.0.0.1:8787/", secret)
    path = request.url.split("8787", 1)[1]
    return make_delivery(request.body, path=path, content_type=None, headers=request.headers.pairs())


# Telegram's updates and Dropbox's notifications name no event type.
NO_EVENT_TYPE = {"telegram", "dropbox"}


@pytest.mark.parametrize("sample", list_samples(), ids=lambda s: s.name)
def test_every_sample_is_detected_and_verifies_with_its_secret(sample, tmp_path):
    secret, wrong_secret = secret_pair(sample.provider, tmp_path) if sample.provider else (None, None)
    delivery = delivery_from_sample(sample, secret)
    secrets = Secrets()
    if secret:
        secrets.add(sample.provider, secret)
    result = check_delivery(delivery, secrets)
    expected_provider = sample.provider or "fhir"
    assert result.provider == expected_provider
    assert result.event_type is not None or sample.provider in NO_EVENT_TYPE
    if sample.provider:
        assert result.verdict.status == "valid", result.verdict.reason
        wrong = Secrets()
        wrong.add(sample.provider, wrong_secret)
        assert check_delivery(delivery, wrong).verdict.status == "invalid"
    else:
        assert result.verdict is None
    assert sample.source.startswith("https://")


@pytest.mark.parametrize("sample", list_samples(), ids=lambda s: s.name)
def test_the_quick_refusal_never_hides_a_provider(sample, tmp_path):
    delivery = delivery_from_sample(sample, secret_pair(sample.provider, tmp_path)[0] if sample.provider else None)
    assert may_be_from_a_provider(delivery.headers, delivery.body)
    # and each detector alone still finds it with the cue that let it through
    message = SignedMessage(delivery.method, "http://h/", delivery.headers, delivery.body)
    assert any(provider.detect(message) for provider in PROVIDERS.values())


def test_a_plain_post_skips_the_detectors_and_none_of_them_would_answer():
    delivery = make_delivery(b'{"type":"invoice.paid","data":{}}', headers=[("User-Agent", "curl/8"), ("X-Request-Id", "1")])
    assert not may_be_from_a_provider(delivery.headers, delivery.body)
    message = SignedMessage(delivery.method, "http://h/", delivery.headers, delivery.body)
    assert all(provider.detect(message) is None for provider in PROVIDERS.values())
    assert check_delivery(delivery, Secrets()).provider is None


def test_event_types_follow_each_provider():
    types = {}
    for sample in list_samples():
        types[sample.name] = check_delivery(delivery_from_sample(sample, None), Secrets()).event_type
    assert types["stripe/charge.refunded"] == "charge.refunded"
    assert types["github/pull_request.opened"] == "pull_request.opened"
    assert types["github/push"] == "push"
    assert types["shopify/orders.create"] == "orders/create"
    assert types["slack/app_mention"] == "app_mention"
    assert types["twilio/message.incoming"] == "message.incoming"
    assert types["fhir/diagnosticreport.corrected"] == "DiagnosticReport.corrected"
    assert types["twilio/message.delivered"] == "message.delivered"
    assert types["shopify/refunds.create"] == "refunds/create"
    assert types["standard/invoice.payment_failed"] == "invoice.payment_failed"


def test_no_secret_is_its_own_verdict_and_says_how_to_fix_it():
    sample = next(s for s in list_samples() if s.provider == "stripe")
    verdict = check_delivery(delivery_from_sample(sample, "whsec_x"), Secrets()).verdict
    assert verdict.status == "no-secret" and "--secret stripe=" in verdict.reason


def test_secrets_come_from_flags_env_and_config_with_path_globs():
    secrets = Secrets.gather(["stripe:/shop/*=whsec_shop", "github=gh"], {"HOOKINSPECT_SECRET_STRIPE": "whsec_env"},
                             {"slack": "sl", "shopify": {"/eu/*": "eu-secret"}})
    assert secrets.for_("stripe", "/shop/hook") == "whsec_shop"
    assert secrets.for_("stripe", "/other") == "whsec_env"
    assert secrets.for_("github", "/x") == "gh" and secrets.for_("slack", "/x") == "sl"
    assert secrets.for_("shopify", "/eu/orders") == "eu-secret" and secrets.for_("shopify", "/us") is None
    assert "whsec" not in repr(secrets) and "gh" not in repr(secrets).replace("github", "")
    with pytest.raises(UsageError):
        Secrets.gather(["nosuchprovider=x"], {}, None)
    with pytest.raises(UsageError):
        Secrets.gather(["stripe"], {}, None)


def test_annotate_sets_provider_event_and_verdict():
    sample = next(s for s in list_samples() if s.name == "github/push")
    delivery = delivery_from_sample(sample, "gh-secret")
    secrets = Secrets()
    secrets.add("github", "gh-secret")
    annotate_delivery(delivery, secrets)
    assert (delivery.provider, delivery.event_type, delivery.verdict) == ("github", "push", "valid")
    other = delivery_from_sample(sample, "gh-secret")
    annotate_delivery(other, secrets, verify=False)
    assert other.provider == "github" and other.verdict is None


def test_resigner_gives_a_fresh_stripe_signature_in_place():
    sample = next(s for s in list_samples() if s.name == "stripe/payment_intent.succeeded")
    old = time.time() - 900
    request = build_sample_request(sample, "http://127.0.0.1:8787/", "whsec_stripe", now=old)
    delivery = make_delivery(request.body, path="/stripe/webhook", content_type=None, headers=request.headers.pairs())
    secrets = Secrets()
    secrets.add("stripe", "whsec_stripe")
    assert check_delivery(delivery, secrets).verdict.status == "expired"
    resign = resigner_for(delivery, secrets)
    sent = SentRequest(method="POST", url="http://127.0.0.1:3000/stripe/webhook", headers=delivery.headers, body=delivery.body)
    fresh = resign(sent).headers
    names = [k for k, _ in fresh]
    assert names == [k for k, _ in delivery.headers]  # same position, replaced value
    assert fresh.get("stripe-signature") != delivery.headers.get("stripe-signature")
    resigned = make_delivery(delivery.body, path="/stripe/webhook", content_type=None, headers=fresh.pairs())
    assert check_delivery(resigned, secrets).verdict.status == "valid"
    assert resigner_for(make_delivery(b"{}"), secrets) is None  # unknown sender: nothing to re-sign


def test_headers_type_is_kept():
    assert isinstance(Headers([("a", "b")]).with_set("a", "c"), Headers)


def test_a_secret_can_come_from_a_file_and_a_bad_file_is_one_clear_error(tmp_path):
    from hookinspect.errors import UsageError
    from hookinspect.signing.registry import Secrets

    (tmp_path / "stripe").write_text("whsec_from_file\n")
    (tmp_path / "empty").write_text("")
    assert Secrets.gather([f"stripe=@{tmp_path / 'stripe'}"], {}, None).for_("stripe", "/") == "whsec_from_file"
    for name, said in (("empty", "is empty"), ("missing", "cannot read the secret file")):
        with pytest.raises(UsageError, match=said):
            Secrets.gather([f"stripe=@{tmp_path / name}"], {}, None)


@pytest.mark.parametrize("secrets", [{}, {"stripe": "whsec_x", "twilio": "tok"}], ids=["no-secret", "with-secrets"])
def test_a_known_sender_without_its_signature_header_is_unsigned(secrets):
    from hookinspect.signing.registry import Secrets, check_delivery
    from tests.factories import make_delivery

    known = Secrets()
    for provider, secret in secrets.items():
        known.add(provider, secret)
    stripe_event = make_delivery(b'{"id":"evt_123","object":"event","type":"charge.succeeded"}')
    twilio_form = make_delivery(b"AccountSid=AC1&MessageSid=SM1&Body=hi", content_type="application/x-www-form-urlencoded")
    # A status callback without AccountSid: Twilio's user agent still names it.
    twilio_proxy = make_delivery(b"CallStatus=completed", content_type="application/x-www-form-urlencoded",
                                 headers=[("User-Agent", "TwilioProxy/1.1")])
    for delivery, provider, header in ((stripe_event, "stripe", "Stripe-Signature"), (twilio_form, "twilio", "X-Twilio-Signature"),
                                       (twilio_proxy, "twilio", "X-Twilio-Signature")):
        result = check_delivery(delivery, known)
        assert result.provider == provider and result.verdict.status == "unsigned"
        assert header in result.verdict.reason


def test_a_verdict_names_the_secret_that_judged_it_never_its_value(tmp_path):
    from hookinspect.formats.samples import build_sample_request, find_sample
    from hookinspect.signing.registry import Secrets, check_delivery
    from tests.factories import make_delivery

    request = build_sample_request(find_sample("stripe/payment_intent.succeeded"), "http://h.example/shop/x", "whsec_shop")
    delivery = make_delivery(request.body, path="/shop/x", content_type=None, headers=request.headers.pairs())
    secrets = Secrets.gather(["stripe:/shop/*=whsec_shop"], {"HOOKINSPECT_SECRET_STRIPE": "whsec_other"}, None)
    verdict = check_delivery(delivery, secrets).verdict
    assert verdict.status == "valid" and "(secret: --secret stripe:/shop/*)" in verdict.reason
    assert "whsec_shop" not in verdict.reason
    elsewhere = make_delivery(request.body, path="/other", content_type=None, headers=request.headers.pairs())
    other = check_delivery(elsewhere, secrets).verdict
    assert other.status == "invalid" and "(secret: HOOKINSPECT_SECRET_STRIPE)" in other.reason


# What a stranger may put where a timestamp or signature goes: more digits than Python reads
# (4,300), floats that are not finite, digits of other scripts, nothing at all.
HOSTILE_VALUES = ("9" * 5000, "9" * 30, "1e400", "inf", "nan", "-5", "\u0661\u0662", "", "t=1,v1=zz")


@pytest.mark.parametrize("sample", [s for s in list_samples() if s.provider in PROVIDERS
                                    and PROVIDERS[s.provider].has_signature], ids=lambda s: s.name)
def test_hostile_timestamps_and_signatures_get_a_verdict_never_an_exception(sample, tmp_path):
    secret, _ = secret_pair(sample.provider, tmp_path)
    request = build_sample_request(sample, "http://127.0.0.1:8787/", secret)
    secrets = Secrets()
    secrets.add(sample.provider, secret)
    names = [name for name, _ in request.headers.pairs()
             if any(word in name.lower() for word in ("time", "sig", "date", "stamp", "hmac", "id"))]
    for name in names:
        for bad in HOSTILE_VALUES:
            headers = [(k, bad if k == name else v) for k, v in request.headers.pairs()]
            delivery = make_delivery(request.body, path="/", content_type=None, headers=headers)
            annotate_delivery(delivery, secrets)  # raises nothing
            assert delivery.verdict in VERDICTS and not delivery.verdict_reason.startswith("not checked"), \
                (name, bad[:20], delivery.verdict_reason)


@pytest.mark.parametrize("provider", ["adyen", "standard", "discord", "sendgrid"])
def test_a_secret_that_cannot_sign_is_one_line_that_does_not_show_it(provider):
    from hookinspect.errors import SigningError
    from hookinspect.signing.registry import provider_named, signed

    sample = next(s for s in list_samples() if s.provider == provider)
    secret = "not hex nor base64 !@#" + "x" * 20
    message = SignedMessage("POST", "http://127.0.0.1:8787/", Headers([("Content-Type", "application/json")]),
                            sample.body())
    with pytest.raises(SigningError) as caught:
        signed(provider_named(provider), message, secret, time.time())
    assert f"cannot sign as {provider}" in caught.value.message and "!@#" not in caught.value.message
    assert "\n" not in caught.value.message


def _svix_signed(body: bytes, secret: str, now: float) -> object:
    """A delivery signed by the svix library itself, as Svix sends it (for a Resend-shaped event too)."""
    from datetime import UTC, datetime

    from svix.webhooks import Webhook

    message_id = "msg_2LJQ6mH1QKSj3cYm0gkDXkI5qqo"
    signature = Webhook(secret).sign(message_id, datetime.fromtimestamp(now, UTC), body.decode())
    return make_delivery(body, path="/hooks", headers=[("svix-id", message_id), ("svix-timestamp", str(int(now))),
                                                       ("svix-signature", signature)])


def test_a_signature_that_verifies_outranks_the_payload_shape():
    now = time.time()
    body = b'{"type":"contact.created","created_at":"2026-12-07T12:00:00Z","data":{"id":"c1"}}'
    secrets = Secrets()
    secrets.add("svix", SECRETS["svix"])
    signed = _svix_signed(body, SECRETS["svix"], now)
    result = check_delivery(signed, secrets, now)
    assert (result.provider, result.verdict.status) == ("svix", "valid")
    # Tampered, it is Svix's to judge (the secret given is Svix's), not "no secret for resend".
    tampered = _svix_signed(body, SECRETS["svix"], now)
    tampered.body = body.replace(b"c1", b"c2")
    result = check_delivery(tampered, secrets, now)
    assert (result.provider, result.verdict.status) == ("svix", "invalid")
    # With no secret at all, the shape still names it.
    assert check_delivery(signed, Secrets(), now).provider == "resend"
