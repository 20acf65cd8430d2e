"""Claims: one channel, several laptops, each storing exactly its share."""

import json

import httpx
import pytest

from hookinspect.errors import UsageError
from hookinspect.model import Delivery, Headers
from hookinspect.relay.claims import parse_claim
from hookinspect.store.sqlite import Store
from tests.factories import read_until, start_listen, stop_process, store_count, wait_until
from tests.relay.test_client import STARTED, new_channel, start_relay, stop_leftover_processes  # noqa: F401 - the fixture


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
