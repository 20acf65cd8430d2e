"""The retry schedule: done, dead, or pending for how long, and a target's Retry-After."""

from hookinspect.model import Attempt, Headers, Response, SentRequest
from hookinspect.send.retries import DEFAULT_SCHEDULE, next_state, retry_after_seconds


def attempt(status=None):
    response = None if status is None else Response(status=status, headers=Headers([("Retry-After", "120")] if status == 503 else []))
    return Attempt(delivery_seq=1, kind="queue", target_url="http://t/", request=SentRequest(method="POST", url="http://t/"),
                   response=response, error_kind=None if status else "connect")


def test_success_ends_410_stops_others_back_off():
    assert next_state(attempt(204), 1, 10, DEFAULT_SCHEDULE) == ("done", 0.0)
    assert next_state(attempt(410), 1, 10, DEFAULT_SCHEDULE) == ("dead", 0.0)
    assert next_state(attempt(500), 1, 10, DEFAULT_SCHEDULE) == ("pending", 5.0)
    assert next_state(attempt(None), 2, 10, DEFAULT_SCHEDULE) == ("pending", 300.0)
    assert next_state(attempt(500), 3, 3, DEFAULT_SCHEDULE) == ("dead", 0.0)


def test_retry_after_is_honoured_when_longer():
    assert next_state(attempt(503), 1, 10, DEFAULT_SCHEDULE) == ("pending", 120.0)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30
    assert retry_after_seconds("soon") is None


def test_retry_after_is_bounded_and_takes_only_ascii_digits():
    assert retry_after_seconds("999999999") == 86_400.0
    assert retry_after_seconds("\u0661\u0662") is None  # Arabic-Indic digits are not delta-seconds
    assert retry_after_seconds("") is None and retry_after_seconds(None) is None
