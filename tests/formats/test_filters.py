import pytest

from hookinspect.errors import UsageError
from hookinspect.formats.filters import (
    JsonTest,
    parse_filter,
    parse_json_path,
    parse_refs,
    parse_time,
)


def test_field_terms_free_text_and_json_tests():
    flt = parse_filter("method:post path:/hooks/* provider:Stripe event:invoice.* status:5xx refund $.data.object.amount>1000")
    assert flt.methods == ["POST"] and flt.path_globs == ["/hooks/*"] and flt.providers == ["stripe"]
    assert flt.event_globs == ["invoice.*"] and flt.statuses == ["5xx"] and flt.texts == ["refund"]
    assert flt.json_tests == [JsonTest(("data", "object", "amount"), ">", 1000)]


def test_json_tests_match_documents():
    doc = {"data": {"items": [{"id": "a"}, {"id": "b"}], "amount": 1500, "currency": "eur"}}
    assert parse_filter("$.data.amount>1000").json_tests[0].matches(doc)
    assert not parse_filter("$.data.amount<1000").json_tests[0].matches(doc)
    assert parse_filter("$.data.items[1].id=b").json_tests[0].matches(doc)
    assert parse_filter("$.data.currency").json_tests[0].matches(doc)
    assert not parse_filter("$.data.missing").json_tests[0].matches(doc)
    assert parse_filter("$.data.currency~^e").json_tests[0].matches(doc)
    assert not parse_filter("$.data.currency>5").json_tests[0].matches(doc)  # str vs int: no match, no crash


def test_bad_terms_are_usage_errors():
    with pytest.raises(UsageError):
        parse_filter("status:7xx")
    with pytest.raises(UsageError):
        parse_filter('path:"unclosed')
    with pytest.raises(UsageError):
        parse_filter("since:yesterday-ish")
    with pytest.raises(UsageError):
        parse_filter("method:")


def test_times_relative_and_absolute():
    assert parse_time("10m", now_us=3_600_000_000) == 3_000_000_000
    assert parse_time("1970-01-01T00:01:00Z") == 60_000_000


def test_refs_expand_ranges_and_keep_ids():
    assert parse_refs(["3", "5-7", "#9,10"]) == [3, 5, 6, 7, 9, 10]
    assert parse_refs(["3f2aBC"]) == ["3f2abc"]
    with pytest.raises(UsageError):
        parse_refs(["7-5"])
    with pytest.raises(UsageError):
        parse_refs(["../etc"])


def test_json_path_syntax():
    assert parse_json_path("$.a[0]['b c'].d") == ("a", 0, "b c", "d")


def test_a_filter_with_undecodable_bytes_is_a_usage_error():
    with pytest.raises(UsageError, match="not UTF-8 text"):
        parse_filter("caf\udce9")


def test_a_pattern_meets_undecodable_bytes_without_an_error():
    from hookinspect.formats.patterns import compile_pattern

    pattern = compile_pattern("x.y")
    assert pattern.search("x\udcffy") and not pattern.search("x\udcffz")  # a byte kept by surrogateescape
    assert compile_pattern("é$").search("café")


def test_or_and_not_are_refused_in_one_line_not_searched_for():
    import pytest

    from hookinspect.errors import UsageError
    from hookinspect.formats.filters import parse_filter

    for expression in ("method:POST OR method:PUT", "a AND b", "NOT refund"):
        with pytest.raises(UsageError, match="has no"):
            parse_filter(expression)
    assert parse_filter("text:OR").texts == ["OR"]  # the word itself, asked for plainly
