"""Record settings by code and by the environment: off unless one names a store or a relay;
a wrong one is one clear line at the app's start."""

import pytest

from hookinspect.errors import UsageError
from hookinspect.record.settings import parse_record_env, record_settings


def test_off_unless_configured():
    assert not record_settings(environ={}).is_on


def test_the_environment_names_a_store_a_relay_or_the_whole_rule():
    assert record_settings(environ={"HOOKINSPECT_RECORD": "/var/lib/app/webhooks.db"}).store.name == "webhooks.db"
    assert record_settings(environ={"HOOKINSPECT_RECORD": "https://relay.example.com/AbC"}).relay == "https://relay.example.com/AbC"
    settings = record_settings(environ={"HOOKINSPECT_RECORD": "store=w.db;paths=/webhooks/*,/hooks/*;methods=post;"
                                                              "providers=Stripe,github;max_body=2KiB"})
    assert (settings.paths, settings.methods, settings.providers, settings.max_body) == (
        ("/webhooks/*", "/hooks/*"), ("POST",), ("stripe", "github"), 2048)


def test_code_wins_over_the_environment():
    settings = record_settings(store="mine.db", environ={"HOOKINSPECT_RECORD": "https://relay.example.com/AbC"})
    assert settings.store.name == "mine.db" and settings.relay is None


@pytest.mark.parametrize("value, said", [
    ("store=a.db;color=blue", "not one of store="),
    ("store=a.db;relay=https://r.example/x", "not both"),
    ("relay=ftp://r.example/x", "not a relay channel URL"),
    ("store=a.db;max_body=lots", "lots"),
])
def test_a_wrong_setting_says_what_is_wrong(value, said):
    with pytest.raises(UsageError) as raised:
        record_settings(environ={"HOOKINSPECT_RECORD": value})
    assert said in str(raised.value.message if hasattr(raised.value, "message") else raised.value)


def test_what_is_selected():
    by_path = record_settings(store="w.db", paths=["/webhooks/*"], methods=["POST"])
    assert by_path.selects("POST", "/webhooks/stripe") and not by_path.selects("GET", "/webhooks/stripe")
    assert not by_path.selects("POST", "/api/orders")
    assert by_path.wants_provider(None)  # paths given, no providers: the path decides
    by_provider = record_settings(store="w.db", providers=["stripe"])
    assert by_provider.selects("POST", "/anything") and by_provider.wants_provider("stripe")
    assert not by_provider.wants_provider("github") and not by_provider.wants_provider(None)
    anything_signed = record_settings(store="w.db")
    assert anything_signed.wants_provider("github") and not anything_signed.wants_provider(None)


def test_a_path_alone_is_a_store_even_when_it_has_an_equals_sign():
    assert parse_record_env("./data/a=b.db") == {"store": "./data/a=b.db"}
