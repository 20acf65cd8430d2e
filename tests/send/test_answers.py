from hookinspect.formats.diff import DiffOptions
from hookinspect.send.answers import diff_attempts, recorded_answer
from tests.factories import make_attempt


def test_the_recorded_answer_is_the_first_forward_else_the_first_reply():
    replay, forward, failed = make_attempt(1, 500), make_attempt(1, 200), make_attempt(1, None, error_kind="connect")
    forward.kind = "forward"
    assert recorded_answer([failed, replay, forward]) is forward
    assert recorded_answer([failed, replay]) is replay
    assert recorded_answer([failed]) is None


def test_a_side_without_a_response_is_an_error_not_a_difference_list():
    result = diff_attempts(1, make_attempt(1, 200), make_attempt(1, None, error_kind="connect"), DiffOptions())
    assert result.error == "http://127.0.0.1:9/hooks did not answer: connection refused" and result.differs and result.changes == []
    same = diff_attempts(1, make_attempt(1, 200), make_attempt(1, 200), DiffOptions())
    assert not same.differs
    status = diff_attempts(1, make_attempt(1, 200), make_attempt(1, 201), DiffOptions())
    assert [c.path for c in status.changes] == ["status"]
