"""The pytest plugin, used the way a project's own test suite would use it."""

import textwrap

pytest_plugins = ["pytester"]

EXAMPLE = textwrap.dedent('''
    import asyncio
    import json

    import httpx
    import pytest

    from hookinspect.pytest_plugin import assert_expectation, replay
    from tests_apps import asgi_app, wsgi_app


    def notify_shop(url):
        """The code under test: it sends a webhook."""
        httpx.post(url + "/hooks/order", json={"order": 1042, "status": "paid"}, headers={"X-Shop": "demo"})


    def test_code_that_sends_a_webhook(webhook_receiver):
        notify_shop(webhook_receiver.url)
        [delivery] = webhook_receiver.wait_for(count=1, path="/hooks/*", timeout=5)
        assert delivery.json() == {"order": 1042, "status": "paid"}
        assert delivery.headers.get("x-shop") == "demo"


    async def test_async_code_too(webhook_receiver):
        async with httpx.AsyncClient() as client:
            await client.post(webhook_receiver.url + "/a", content=b"1")
            await client.post(webhook_receiver.url + "/b", content=b"2")
        assert [d.body for d in webhook_receiver.wait_for(count=2)] == [b"1", b"2"]


    def test_wait_for_says_what_arrived(webhook_receiver):
        httpx.post(webhook_receiver.url + "/other", content=b"x")
        with pytest.raises(AssertionError, match="got 0; received: POST /other"):
            webhook_receiver.wait_for(path="/hooks/*", timeout=0.3)


    def test_verify_a_received_signature(webhook_receiver):
        from hookinspect.formats.samples import build_sample_request, find_sample
        request = build_sample_request(find_sample("github/push"), webhook_receiver.url + "/", "s3cret")
        httpx.post(request.url, content=request.body, headers=request.headers.pairs())
        [delivery] = webhook_receiver.wait_for()
        assert delivery.verify("github", "s3cret").status == "valid"
        assert delivery.verify("github", "wrong").status == "invalid"


    @pytest.mark.parametrize("app", [asgi_app, wsgi_app])
    def test_fixture_records_against_apps(webhook_fixtures, app):
        for record in webhook_fixtures("shop.json"):
            answer = replay(record, app, secrets={"stripe": "whsec_apps"})
            assert_expectation(record, answer)


    async def test_replay_inside_a_running_loop(webhook_fixtures, webhook_replay, webhook_expect):
        [record] = webhook_fixtures("shop.json")
        webhook_expect(record, webhook_replay(record, asgi_app, secrets={"stripe": "whsec_apps"}))


    def test_failed_expectation_reads_well(webhook_fixtures):
        [record] = webhook_fixtures("shop.json")
        answer = replay(record, asgi_app)  # no secret: the app rejects the stale signature
        with pytest.raises(AssertionError) as info:
            assert_expectation(record, answer)
        assert "status: expected 200, got 400" in str(info.value) and "bad signature" in str(info.value)
''')


def test_plugin_fixtures_in_a_real_test_suite(pytester, tmp_path):
    from pathlib import Path

    from hookinspect.formats.export import ExportItem, export
    from hookinspect.formats.samples import build_sample_request, find_sample
    from tests.factories import make_attempt, make_delivery

    request = build_sample_request(find_sample("stripe/payment_intent.succeeded"), "http://x/", "old", now=1_700_000_000)
    delivery = make_delivery(request.body, path="/stripe/webhook", content_type=None, headers=request.headers.pairs())
    delivery.seq = 1
    text, _ = export([ExportItem(delivery, [make_attempt(1, 200)])], "fixture")
    pytester.path.joinpath("shop.json").write_text(text)
    pytester.path.joinpath("tests_apps.py").write_text(Path(__file__).with_name("apps.py").read_text())
    pytester.makepyfile(test_example=EXAMPLE)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=8)
