"""`hookinspect verify`: re-check a stored delivery's signature and say why."""

import json

from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.formats.samples import build_sample_request, find_sample
from hookinspect.store.sqlite import Store
from tests.factories import make_delivery

runner = CliRunner()


def stored_stripe(store_path, secret="whsec_right"):
    request = build_sample_request(find_sample("stripe/payment_intent.succeeded"), "http://h.example/", secret)
    delivery = make_delivery(request.body, path="/stripe", content_type=None, headers=request.headers.pairs())
    delivery.provider, delivery.event_type = "stripe", "payment_intent.succeeded"
    delivery.verdict, delivery.verdict_reason = "invalid", "body differs from what was signed, or the secret is wrong"
    with Store(store_path) as store:
        store.insert_delivery(delivery)


def verify(store_path, *args):
    return runner.invoke(app, ["verify", "1", "--store", str(store_path), *args], env={"HOOKINSPECT_SECRET_STRIPE": ""})


def test_verify_answers_and_stores_the_new_verdict_only_with_save(store_path):
    stored_stripe(store_path)
    asked = verify(store_path, "--secret", "stripe=whsec_right", "--json")
    assert asked.exit_code == 0 and json.loads(asked.stdout)["verdict"] == "valid"
    assert json.loads(asked.stdout)["stored_verdict"] == "invalid" and not json.loads(asked.stdout)["saved"]
    said = verify(store_path, "--secret", "stripe=whsec_right")
    assert "stays invalid in the store" in said.stderr and "--save" in said.stderr
    with Store(store_path) as store:
        assert store.get(1).verdict == "invalid"  # a question changes nothing
    saved = verify(store_path, "--secret", "stripe=whsec_right", "--save", "--json")
    assert saved.exit_code == 0 and json.loads(saved.stdout)["saved"]
    with Store(store_path) as store:
        assert store.get(1).verdict == "valid"


def test_a_mistyped_secret_does_not_rewrite_a_valid_verdict(store_path):
    stored_stripe(store_path)
    verify(store_path, "--secret", "stripe=whsec_right", "--save")
    wrong = verify(store_path, "--secret", "stripe=whsec_typo")
    assert wrong.exit_code == 1 and "invalid" in wrong.stdout
    with Store(store_path) as store:
        assert store.get(1).verdict == "valid"


def test_a_bare_secret_is_the_delivery_providers(store_path):
    stored_stripe(store_path)
    result = verify(store_path, "--secret", "whsec_right", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["verdict"] == "valid", result.output


def test_verify_without_a_secret_reports_but_keeps_the_stored_verdict(store_path):
    stored_stripe(store_path)
    result = verify(store_path)
    assert result.exit_code == 1 and "no-secret" in result.stdout
    with Store(store_path) as store:
        assert store.get(1).verdict == "invalid"  # not overwritten by "we could not check"


def test_a_provider_without_signatures_is_said_plainly(store_path):
    with Store(store_path) as store:
        store.insert_delivery(make_delivery(b'{"resourceType":"DiagnosticReport","status":"final"}',
                                            content_type="application/fhir+json"))
    result = verify(store_path)
    assert result.exit_code == 1 and "carry no signature" in result.stdout and "Traceback" not in result.output
