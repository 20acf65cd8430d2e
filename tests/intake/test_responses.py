"""Per-path answers: parsing --respond and [[responses]], and which rule answers when."""

import pytest

from hookinspect.errors import UsageError
from hookinspect.intake.responses import parse_respond, rules_from_config


def statuses(rule, path, count):
    return [answer.status if (answer := rule.answer(path)) else None for _ in range(count)]


def test_a_rule_reads_status_delay_headers_and_a_body_with_commas():
    rule = parse_respond('/hooks/*=201,delay=0.5,header=X-Mock: 1,body={"a":1,"b":2}')
    assert rule.glob == "/hooks/*" and rule.response.status == 201 and rule.response.delay == 0.5
    assert rule.response.headers == [("X-Mock", "1")] and rule.response.body == b'{"a":1,"b":2}'
    assert rule.answer("/other") is None


def test_flaky_rules_fire_every_nth_the_first_n_or_by_chance():
    assert statuses(parse_respond("/x=500,every=3"), "/x", 6) == [None, None, 500, None, None, 500]
    assert statuses(parse_respond("/x=503,times=2"), "/x", 4) == [503, 503, None, None]
    always = statuses(parse_respond("/x=500,chance=1"), "/x", 5)
    assert always == [500] * 5


@pytest.mark.parametrize("spec, needle", [
    ("/x", "write it as GLOB=STATUS"),
    ("/x=999", "not an HTTP status"),
    ("/x=abc", "not an HTTP status"),
    ("/x=500,evry=3", "did you mean 'every'?"),
    ("/x=500,every=0", "1 or more"),
    ("/x=500,chance=2", "probability"),
    ("/x=500,every=2,times=1", "choose one of"),
    ("/x=500,delay=-1", "negative"),
    ("/x=500,header=nocolon", "NAME:VALUE"),
    ("/x=500,body=@/nonexistent/file", "cannot read body file"),
])
def test_bad_rules_are_one_line_usage_errors(spec, needle):
    with pytest.raises(UsageError, match=needle.replace("?", r"\?").replace("(", r"\(")):
        parse_respond(spec)


def test_config_tables_take_the_same_rules(tmp_path):
    (tmp_path / "ok.json").write_text('{"ok":false}')
    [rule] = rules_from_config([{"path": "/y/*", "status": 502, "body_file": str(tmp_path / "ok.json"),
                                 "headers": {"Retry-After": "1"}, "times": 1}])
    assert rule.response.body == b'{"ok":false}' and rule.response.headers == [("Retry-After", "1")]
    assert statuses(rule, "/y/z", 2) == [502, None]
    with pytest.raises(UsageError, match="unknown key 'stauts'"):
        rules_from_config([{"path": "/y", "stauts": 500}])
