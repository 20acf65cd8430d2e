"""Claims: one channel, several laptops, each storing exactly its share."""

import json

import httpx
import pytest

from hookinspect.errors import UsageError
from hookinspect.model import Delivery, Headers
from hookinspect.relay.claims import parse_claim
from hookinspect.store.sqlite import Store
from tests.factories import read_until, start_listen, stop_process, store_count, wait_until
from tests.tunnel import STARTED, new_channel, start_relay, stop_leftover_processes  # noqa: F401 - the fixture


def laptop(tmp_path, name, channel, *claim_args):
    store = tmp_path / name / "store.db"
    store.parent.mkdir(exist_ok=True)
    proc, _ = start_listen(store, "--source", channel["url"], "--token", channel["token"], "--subscriber", name,
                           *claim_args)
    STARTED.append(proc)
    read_until(proc.stdout, "caught up", 30)  # connected, its claim recorded
    return proc, store


def bodies(store):
    with Store(store) as opened:
        return [json.loads(opened.get(seq).body) for seq in sorted(opened.seqs())]


def test_three_claims_and_a_default_each_store_exactly_their_share(tmp_path):
    _, relay_url = start_relay(tmp_path / "relay")
    channel = new_channel(relay_url)
    ana, ana_store = laptop(tmp_path, "ana", channel, "--claim", "provider:github $.dev=ana")
    _, bob_store = laptop(tmp_path, "bob", channel, "--claim", "$.dev=bob")
    cy, cy_store = laptop(tmp_path, "cy", channel, "--claim", "path:/billing/* $.dev=cy")
    _, rest_store = laptop(tmp_path, "ops", channel, "--claim-default")
    stop_process(cy)  # offline while its events arrive: they wait for it, nobody else gets them
    sent = []
    with httpx.Client(timeout=10) as client:
        for n in range(40):
            dev = ("ana", "bob", "cy", "nobody")[n % 4]
            doc = {"n": n, "dev": dev}
            headers = {"Content-Type": "application/json"}
            path = "/billing/invoice" if dev == "cy" else "/hooks"
            if dev == "ana":
                headers["X-GitHub-Event"] = "push"
            assert client.post(channel["url"] + path, json=doc, headers=headers).status_code == 200
            sent.append(doc)
        # ana's delivery without GitHub's header is not hers: unclaimed, so the default's.
        assert client.post(channel["url"] + "/hooks", json={"n": 40, "dev": "ana"}).status_code == 200
    share = {dev: [d for d in sent if d["dev"] == dev] for dev in ("ana", "bob", "cy", "nobody")}
    wait_until(lambda: store_count(ana_store) >= 10 and store_count(bob_store) >= 10 and store_count(rest_store) >= 11,
               30, "ana, bob and the default with their shares while cy is offline")
    cy, _ = start_listen(cy_store, "--source", channel["url"], "--token", channel["token"], "--subscriber", "cy",
                         "--claim", "path:/billing/* $.dev=cy")
    STARTED.append(cy)
    wait_until(lambda: store_count(cy_store) >= 10, 30, "cy's share once it is back")
    stop_process(ana)
    assert bodies(ana_store) == share["ana"]
    assert bodies(bob_store) == share["bob"]
    assert bodies(cy_store) == share["cy"]
    assert bodies(rest_store) == share["nobody"] + [{"n": 40, "dev": "ana"}]


def test_without_claims_every_subscriber_gets_everything(tmp_path):
    _, relay_url = start_relay(tmp_path / "relay")
    channel = new_channel(relay_url)
    _, one = laptop(tmp_path, "one", channel)
    _, two = laptop(tmp_path, "two", channel)
    with httpx.Client(timeout=10) as client:
        for n in range(5):
            assert client.post(channel["url"], json={"n": n}).status_code == 200
    wait_until(lambda: store_count(one) >= 5 and store_count(two) >= 5, 30, "both with all 5")
    assert bodies(one) == bodies(two) == [{"n": n} for n in range(5)]


@pytest.mark.parametrize("text, says", [
    ("", "empty claim"), ("status:5xx", "cannot be claimed"), ("provider:strpe", "did you mean 'stripe'"),
])
def test_a_claim_the_relay_cannot_judge_is_a_clear_error(text, says):
    with pytest.raises(UsageError) as raised:
        parse_claim(text)
    assert says in str(raised.value)


def test_a_claim_matches_as_the_store_would():
    delivery = Delivery(method="POST", path="/billing/x", headers=Headers([("Content-Type", "application/json")]),
                        body=b'{"data":{"object":{"metadata":{"dev":"ana"}}}}', provider="stripe", event_type="invoice.paid")
    assert parse_claim("provider:stripe $.data.object.metadata.dev=ana").matches(delivery)
    assert parse_claim("event:invoice.* ct:json path:/billing/*").matches(delivery)
    assert not parse_claim("provider:github").matches(delivery)
    assert not parse_claim("$.data.object.metadata.dev=bob").matches(delivery)


def test_a_claim_on_a_sealed_channel_is_refused_in_one_line_that_says_why(tmp_path):
    _, relay_url = start_relay(tmp_path / "relay")
    laptop_store = tmp_path / "laptop" / "store.db"
    from tests.relay.test_sealed import sealed_channel
    channel = sealed_channel(relay_url, laptop_store)
    proc, _ = start_listen(laptop_store, "--source", channel["url"], "--token", channel["token"], "--claim", "$.dev=ana")
    STARTED.append(proc)
    said = read_until(proc.stdout, "relay answered 400", 30)
    assert "a sealed channel cannot route by claims" in said.splitlines()[-1]


def test_claims_are_listed_and_a_released_claims_share_goes_to_the_default(tmp_path):
    from tests.factories import hookinspect_cmd

    _, relay_url = start_relay(tmp_path / "relay")
    channel = new_channel(relay_url)
    ana, ana_store = laptop(tmp_path, "ana", channel, "--claim", "$.dev=ana")
    _, rest_store = laptop(tmp_path, "ops", channel, "--claim-default")
    env_token = {"HOOKINSPECT_TOKEN": channel["token"]}
    import os
    import subprocess

    listed = subprocess.run(hookinspect_cmd("channel", "claims", channel["url"], "--json"), capture_output=True,
                            text=True, env={**os.environ, **env_token}, timeout=60)
    assert listed.returncode == 0, listed.stderr
    claims = {c["subscriber"]: c for c in json.loads(listed.stdout)}
    assert claims["ana"]["claim"] == "$.dev=ana" and claims["ops"]["default"] and not claims["ana"]["expired"]
    refused = subprocess.run(hookinspect_cmd("channel", "claims", channel["url"]), capture_output=True, text=True,
                             timeout=60)  # no token
    assert refused.returncode != 0 and "the relay answered 401" in refused.stderr and len(refused.stderr.splitlines()) == 1
    stop_process(ana)  # ana leaves for good; until her claim is released her share waits for her
    released = subprocess.run(hookinspect_cmd("channel", "release", channel["url"], "--subscriber", "ana"),
                              capture_output=True, text=True, env={**os.environ, **env_token}, timeout=60)
    assert released.returncode == 0 and "released ana" in released.stdout
    with httpx.Client(timeout=10) as client:
        assert client.post(channel["url"], json={"dev": "ana", "n": 1}).status_code == 200
    wait_until(lambda: store_count(rest_store) >= 1, 30, "ana's delivery at the default once her claim is released")
    assert bodies(rest_store) == [{"dev": "ana", "n": 1}] and store_count(ana_store) == 0
    again = subprocess.run(hookinspect_cmd("channel", "release", channel["url"], "--subscriber", "ana"),
                           capture_output=True, text=True, env={**os.environ, **env_token}, timeout=60)
    assert again.returncode == 2 and "'ana' claims nothing on this channel" in again.stderr


def test_a_claim_not_renewed_for_its_ttl_lapses(tmp_path):
    import time

    from hookinspect.relay.claims import ClaimRouter, Subscription
    from hookinspect.relay.storage import Claim, RelayEvent, SqliteRelayStorage

    storage = SqliteRelayStorage(tmp_path)
    try:
        storage.set_claim("c", Claim("ana", "$.dev=ana", False, time.time() - 3600))  # seen an hour ago
        event = RelayEvent(1, "c", 1, "POST", "/", "", [("Content-Type", "application/json")], b'{"dev":"ana"}')
        plain = Subscription()
        fresh = ClaimRouter(storage, ttl_seconds=7200)
        lapsed = ClaimRouter(storage, ttl_seconds=1800)
        assert fresh.select([event], plain, fresh.claims("c")) == []  # ana's, while her claim lives
        assert lapsed.select([event], plain, lapsed.claims("c")) == [event]  # unclaimed once it lapsed
    finally:
        storage.close()
