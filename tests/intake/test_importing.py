"""Import: identity by delivery id (content and time without one), nothing lost on the way."""

import json

import pytest

from hookinspect.formats.export import export
from hookinspect.intake.importing import parse_import
from hookinspect.model import ExportItem
from hookinspect.store.sqlite import Store
from tests.factories import import_into, make_attempt, make_delivery


def two_alike() -> list[ExportItem]:
    """Two distinct deliveries with the same bytes (a sender that retried), each with its history."""
    items = []
    for n in (1, 2):
        delivery = make_delivery(b'{"same":"body"}', received_us=1_764_345_600_000_000 + n)
        delivery.seq = n
        delivery.provider, delivery.event_type, delivery.verdict = "stripe", "charge.succeeded", "invalid"
        items.append(ExportItem(delivery, [make_attempt(n, 500), make_attempt(n, 200)]))
    return items


@pytest.mark.parametrize("fmt", ["json", "har"])
def test_distinct_deliveries_with_the_same_body_are_both_kept_with_all_they_had(tmp_path, fmt):
    text, _ = export(two_alike(), fmt, redact_secrets=False)
    assert import_into(tmp_path / "s.db", parse_import(text.encode())) == (2, 0)
    assert import_into(tmp_path / "s.db", parse_import(text.encode())) == (0, 2)  # the same ids again
    with Store(tmp_path / "s.db") as store:
        for seq in (1, 2):
            delivery = store.get(seq)
            assert (delivery.provider, delivery.event_type, delivery.verdict) == ("stripe", "charge.succeeded", "invalid")
            assert [a.outcome for a in store.attempts(seq)] == ["500", "200"]


def test_a_browser_har_without_ids_is_told_apart_by_content_and_time(tmp_path):
    entry = {"startedDateTime": "2026-11-28T09:00:01.250Z", "time": 1,
             "request": {"method": "POST", "url": "https://api.example.com/hook", "headers": [],
                         "postData": {"mimeType": "application/json", "text": '{"a":1}'}},
             "response": {"status": 200, "headers": [], "content": {"text": ""}}}
    later = {**entry, "startedDateTime": "2026-11-28T09:05:00.000Z"}
    har = json.dumps({"log": {"entries": [entry, later]}}).encode()
    assert import_into(tmp_path / "s.db", parse_import(har)) == (2, 0)  # same body, another time: kept
    assert import_into(tmp_path / "s.db", parse_import(har)) == (0, 2)


def har_entry(**changes) -> dict:
    entry = {"startedDateTime": "2026-11-28T09:00:01.250Z", "time": 1,
             "request": {"method": "POST", "url": "https://api.example.com/hook", "headers": [],
                         "postData": {"mimeType": "application/json", "text": '{"a":1}'}},
             "response": {"status": 200, "statusText": "OK", "headers": [], "content": {"text": ""}}}
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = entry
        for parent in parents:
            node = node[parent]
        node[last] = value
    return entry


@pytest.mark.parametrize(("changes", "said"), [
    ({"request__method": "GET\r\nX-Injected: 1"}, "not an HTTP method"),
    ({"request__headers": [{"name": "X-A", "value": "1\r\nX-B: 2"}]}, "line break"),
    ({"response__status": 10**30}, "not an HTTP status"),  # was an OverflowError traceback in SQLite
    ({"time": "soon"}, "malformed"),  # was a ValueError traceback
    ({"request__headers": {"not": "a list"}}, "malformed"),
])
def test_a_har_from_anyone_with_what_no_capture_could_hold_is_refused_whole(changes, said):
    from hookinspect.errors import UsageError

    document = {"log": {"entries": [har_entry(), har_entry(**changes)]}}
    with pytest.raises(UsageError, match=said) as caught:
        parse_import(json.dumps(document).encode(), "hook.har")
    assert "entry 2" in caught.value.message and "\n" not in caught.value.message  # and entry 1 is not returned
