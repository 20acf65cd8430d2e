"""The declarative schemes: every built-in one signs, verifies, refuses tampering and old
timestamps, and is the one detected; the shapes are checked against HMACs computed here by
hand; user-defined providers from hookinspect.toml work end to end and are validated."""

import base64
import hashlib
import hmac
import json

import pytest
from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.errors import UsageError
from hookinspect.model import Headers
from hookinspect.signing.base import EXPIRED, INVALID, MALFORMED, VALID, SignedMessage
from hookinspect.signing.providers import SCHEMES
from hookinspect.signing.registry import PROVIDERS, detect
from hookinspect.signing.registry import signed as signed_by
from hookinspect.signing.scheme import scheme_from_table
from hookinspect.store.sqlite import Store
from tests.factories import make_delivery

NOW = 1_764_345_600.0
SECRET = "s3cret-signing-key"
URL = "https://hooks.example.com/webhooks/in?x=1"


@pytest.fixture(autouse=True)
def registry_as_built():
    """Providers a test loads from hookinspect.toml are a process's for its life: forget them after."""
    from hookinspect.signing import registry
    kept = (dict(registry.PROVIDERS), dict(registry.USER_SCHEMES), set(registry.CUE_HEADERS))
    yield
    for live, saved in zip((registry.PROVIDERS, registry.USER_SCHEMES, registry.CUE_HEADERS), kept, strict=True):
        live.clear()
        live.update(saved)


def message_for(scheme, body=None):
    """A delivery as the provider would send it, before signing: its detection cues and a body."""
    detect_ = scheme.detect
    document = {"type": "thing.happened", "event": "thing.happened", "amount": 100}
    if detect_.json:
        path, eq, value = detect_.json.partition("=")
        document[path.removeprefix("$.")] = value if eq else "whatsapp_business_account"
    headers = [("Content-Type", "application/json")]
    if detect_.header:
        name, colon, glob = detect_.header.partition(":")
        headers.append((name.strip(), glob.strip() if colon else "thing.happened"))
    if scheme.id_header and scheme.id_header.lower() not in {h.lower() for h, _ in headers}:
        headers.append((scheme.id_header, "msg-123"))
    return SignedMessage("POST", URL, Headers(headers), body if body is not None else json.dumps(document).encode())


def signed(scheme, message, secret=SECRET, now=NOW):
    return signed_by(PROVIDERS[scheme.name], message, secret, now)


@pytest.mark.parametrize("scheme", SCHEMES, ids=[s.name for s in SCHEMES])
def test_every_scheme_signs_verifies_and_refuses_tampering(scheme):
    message = signed(scheme, message_for(scheme))
    assert scheme.verify(message, SECRET, NOW).status == VALID
    tampered = SignedMessage(message.method, message.url, message.headers, message.body + b" ")
    wrong_secret = scheme.verify(message, "other-secret", NOW).status
    if scheme.algorithm == "token":
        assert wrong_secret == INVALID  # a token covers no body
    else:
        assert scheme.verify(tampered, SECRET, NOW).status == INVALID
        assert wrong_secret == INVALID
    found = detect(message)
    assert found is not None and found[0].name == scheme.name  # detected as itself, not as a neighbour
    assert PROVIDERS[scheme.name].verify(message, SECRET, NOW).status == VALID


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s.tolerance is not None and
                                    ("{timestamp}" in s.signed or s.timestamp_key or s.timestamp_json)], ids=lambda s: s.name)
def test_timestamped_schemes_refuse_old_signatures(scheme):
    message = signed(scheme, message_for(scheme), now=NOW - scheme.tolerance - 60)
    verdict = scheme.verify(message, SECRET, NOW)
    assert verdict.status == EXPIRED and "tolerance" in verdict.reason


def by_name(name):
    return next(s for s in SCHEMES if s.name == name)


def hex_hmac(secret, data, algorithm=hashlib.sha256):
    return hmac.new(secret.encode(), data, algorithm).hexdigest()


def test_shapes_match_hmacs_computed_by_hand():
    """What each provider documents, computed here without the engine."""
    body = b'{"event":"x"}'
    twitch = signed(by_name("twitch"), SignedMessage("POST", URL, Headers([("Twitch-Eventsub-Message-Id", "m1")]), body))
    ts = twitch.headers.get("Twitch-Eventsub-Message-Timestamp")
    assert ts == "2025-11-28T16:00:00Z"
    assert twitch.headers.get("Twitch-Eventsub-Message-Signature") == "sha256=" + hex_hmac(SECRET, b"m1" + ts.encode() + body)
    paddle = signed(by_name("paddle"), SignedMessage("POST", URL, Headers([]), body)).headers.get("Paddle-Signature")
    assert paddle == f"ts={int(NOW)};h1=" + hex_hmac(SECRET, f"{int(NOW)}:".encode() + body)
    hubspot = signed(by_name("hubspot"), SignedMessage("POST", URL, Headers([]), body))
    expected = base64.b64encode(hmac.new(SECRET.encode(), b"POST" + URL.encode() + body + str(int(NOW * 1000)).encode(),
                                         hashlib.sha256).digest()).decode()
    assert hubspot.headers.get("X-HubSpot-Signature-v3") == expected
    assert hubspot.headers.get("X-HubSpot-Request-Timestamp") == str(int(NOW * 1000))
    zoom = signed(by_name("zoom"), SignedMessage("POST", URL, Headers([]), body)).headers.get("x-zm-signature")
    assert zoom == "v0=" + hex_hmac(SECRET, f"v0:{int(NOW)}:".encode() + body)
    paystack = signed(by_name("paystack"), SignedMessage("POST", URL, Headers([]), body)).headers.get("x-paystack-signature")
    assert paystack == hex_hmac(SECRET, body, hashlib.sha512)
    square = signed(by_name("square"), SignedMessage("POST", URL, Headers([]), body)).headers.get("x-square-hmacsha256-signature")
    assert square == base64.b64encode(hmac.new(SECRET.encode(), URL.encode() + body, hashlib.sha256).digest()).decode()


def test_rotation_lists_and_nanosecond_timestamps_verify():
    pagerduty = by_name("pagerduty")
    body = b'{"event":{"event_type":"incident.triggered"}}'
    good = "v1=" + hex_hmac(SECRET, body)
    rotated = SignedMessage("POST", URL, Headers([("X-PagerDuty-Signature", f"v1={'0' * 64},{good}")]), body)
    assert pagerduty.verify(rotated, SECRET, NOW).status == VALID  # one of several signatures
    twitch = by_name("twitch")
    ts = "2025-11-28T15:59:59.123456789Z"  # Twitch sends nanoseconds
    headers = Headers([("Twitch-Eventsub-Message-Id", "m1"), ("Twitch-Eventsub-Message-Timestamp", ts),
                       ("Twitch-Eventsub-Message-Signature", "sha256=" + hex_hmac(SECRET, b"m1" + ts.encode() + body))])
    assert twitch.verify(SignedMessage("POST", URL, headers, body), SECRET, NOW).status == VALID
    broken = SignedMessage("POST", URL, Headers([("Paddle-Signature", "nonsense")]), body)
    assert by_name("paddle").verify(broken, SECRET, NOW).status == MALFORMED


ACME = """
[providers.acme]
detect = { header = "X-Acme-Signature" }
header = "X-Acme-Signature"
algorithm = "hmac-sha256"
encoding = "hex"
prefix = "sha256="
signed = "{body}"
event = "$.type"
"""


def test_a_provider_defined_in_hookinspect_toml_is_detected_verified_and_listed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hookinspect.toml").write_text(ACME)
    body = b'{"type":"order.shipped"}'
    delivery = make_delivery(body, headers=[("X-Acme-Signature", "sha256=" + hex_hmac("acme-key", body))])
    with Store(tmp_path / "s.db") as store:
        store.insert_delivery(delivery)
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["providers", "--json"]).stdout)
    acme = next(p for p in listed if p["name"] == "acme")
    assert acme["defined_in"] == "hookinspect.toml" and acme["detected_by"] == "header X-Acme-Signature"
    result = runner.invoke(app, ["verify", "1", "--secret", "acme=acme-key", "--json", "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    said = json.loads(result.stdout)
    assert said["provider"] == "acme" and said["verdict"] == VALID and said["event_type"] == "order.shipped"
    wrong = runner.invoke(app, ["verify", "1", "--secret", "acme=nope", "--store", str(tmp_path / "s.db")])
    assert wrong.exit_code == 1


@pytest.mark.parametrize("table, needle", [
    ({"header": "X-A"}, "needs detect"),
    ({"detect": {"header": "X-A"}}, "needs header"),
    ({"detect": {"heder": "X-A"}, "header": "X-A"}, "did you mean 'header'?"),
    ({"detect": {"header": "X-A"}, "header": "X-A", "algoritm": "hmac-sha1"}, "did you mean 'algorithm'?"),
    ({"detect": {"header": "X-A"}, "header": "X-A", "algorithm": "hmac-md5"}, "algorithm = 'hmac-md5'"),
    ({"detect": {"header": "X-A"}, "header": "X-A", "signed": "{timestamp}.{body}"}, "timestamp_header"),
    ({"detect": {"header": "X-A"}, "header": "X-A", "signed": "{bdy}"}, "did you mean 'body'?"),
    ({"detect": {"header": "X-A"}, "header": "X-A", "event": "type"}, "JSON path"),
    ({"detect": {"header": "X-A"}, "header": "X-A", "timestamp_json": "ts"}, "timestamp_json is a JSON path"),
])
def test_bad_provider_tables_are_clear_errors(table, needle):
    with pytest.raises(UsageError, match=needle.replace("?", r"\?").replace("(", r"\(")):
        scheme_from_table("acme", table)


def test_a_bad_provider_table_is_exit_2_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hookinspect.toml").write_text('[providers.acme]\ndetect = { header = "X-A" }\nheader = "X-A"\nencoding = "hexx"\n')
    result = CliRunner().invoke(app, ["providers"])
    assert result.exit_code == 2 and "encoding = 'hexx' (did you mean 'hex'?)" in result.stderr


def test_a_user_provider_with_its_timestamp_in_the_body_signs_in_place_and_expires():
    from hookinspect.signing.registry import scheme_provider
    scheme = scheme_from_table("acme", {"detect": {"header": "X-Acme-Signature"}, "header": "X-Acme-Signature",
                                        "timestamp_json": "$.sent_at", "timestamp_format": "unix-ms", "tolerance": 60})
    provider = scheme_provider(scheme)
    body = b'{"type": "order.paid", "sent_at": 1, "pad": "kept as it is"}'
    message = signed_by(provider, SignedMessage("POST", URL, Headers([("Content-Type", "application/json")]), body),
                        SECRET, NOW)
    assert message.body == body.replace(b'"sent_at": 1', b'"sent_at": %d' % int(NOW * 1000))  # only those digits changed
    assert provider.verify(message, SECRET, NOW).status == VALID
    assert provider.verify(message, SECRET, NOW + 61).status == EXPIRED
    assert provider.verify(SignedMessage("POST", URL, message.headers, message.body.replace(b"kept", b"kepT")),
                           SECRET, NOW).status == INVALID
