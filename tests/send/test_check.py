import time
import xml.etree.ElementTree as ET

import pytest

from hookinspect.errors import NetworkError, UsageError
from hookinspect.formats.fixtures import Expectation, FixtureRecord
from hookinspect.formats.samples import build_sample_request, find_sample
from hookinspect.send.check import evaluate, junit_xml, load_app, run_checks
from hookinspect.signing.registry import Secrets, resigner_for
from tests.apps import asgi_app, wsgi_app
from tests.factories import make_attempt, make_delivery


def stripe_record(expect=None):
    request = build_sample_request(find_sample("stripe/payment_intent.succeeded"), "http://x/", "whsec_old",
                                   now=time.time() - 3600)
    delivery = make_delivery(request.body, path="/stripe/webhook", content_type=None, headers=request.headers.pairs())
    return FixtureRecord("stripe succeeded", delivery, expect or Expectation(status=200, json={"$.received": True}), "shop.json", 1)


def secrets_for(secret):
    known = Secrets()
    known.add("stripe", secret)
    return lambda delivery: resigner_for(delivery, known)


def test_evaluate_status_classes_lists_json_paths_and_latency():
    ok = make_attempt(1, 202, body=b'{"received":true,"n":{"x":2}}')
    assert evaluate(Expectation(status="2xx", json={"$.received": True, "$.n.x": 2}), ok) == []
    assert evaluate(Expectation(status=[200, 202]), ok) == []
    failures = evaluate(Expectation(status=200, json={"$.received": False, "$.missing": 1}, max_ms=0.1), ok)
    assert [(c.path, c.kind) for c in failures] == [("status", "changed"), ("$.received", "changed"),
                                                    ("$.missing", "removed"), ("latency_ms", "changed")]
    down = evaluate(Expectation(), make_attempt(1, None, error_kind="connect"))
    assert down[0].path == "response"


@pytest.mark.parametrize("app", [asgi_app, wsgi_app], ids=["asgi", "wsgi"])
async def test_check_straight_into_an_app_resigns_old_fixtures(app):
    [passed] = await run_checks([stripe_record()], app=app, resigner_for=secrets_for("whsec_apps"))
    assert passed.passed, passed.failures
    [failed] = await run_checks([stripe_record()], app=app)  # stored signature: old, and by another secret
    assert not failed.passed and failed.attempt.response.status == 400


async def test_check_against_a_loopback_target(target):
    target.body = b'{"received":true}'
    results = await run_checks([stripe_record(), stripe_record(Expectation(status=201))], target=target.url,
                               concurrency=2)
    assert [r.passed for r in results] == [True, False]
    assert len(target.received) == 2


async def test_a_target_that_is_down_fails_fast_once():
    start = time.perf_counter()
    with pytest.raises(NetworkError, match="not reachable"):
        await run_checks([stripe_record()] * 50, target="http://127.0.0.1:1/", timeout=30)
    assert time.perf_counter() - start < 10


def test_junit_report_structure():
    results_ok = make_attempt(1, 200)
    from hookinspect.send.check import CheckResult

    record = stripe_record()
    results = [CheckResult(record, results_ok, []),
               CheckResult(record, make_attempt(1, 500, body=b"boom"), evaluate(Expectation(status=200), make_attempt(1, 500)))]
    root = ET.fromstring(junit_xml(results))
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.findall("testcase")[1].find("failure")
    assert "status: expected 200, got 500" in failure.get("message") and "boom" in failure.text


def test_load_app_errors():
    assert load_app("tests.apps:asgi_app") is asgi_app
    for spec, message in (("nocolon", "module:attribute"), ("no_such_module_x:app", "cannot import"),
                          ("tests.apps:nothing", "no attribute")):
        with pytest.raises(UsageError, match=message):
            load_app(spec)
