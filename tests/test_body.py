import gzip
import zlib

import brotli

from hookinspect.body import (
    NOT_JSON,
    decode_body_fields,
    decode_content,
    decode_text,
    encode_body_fields,
    escape_controls,
    hexdump,
    looks_binary,
    parse_content_type,
    parse_json,
)


def test_text_view_never_raises_on_invalid_utf8():
    assert decode_text(b"ok \xff\xfe end") == "ok \ufffd\ufffd end"
    assert decode_text(b"caf\xe9", "latin-1") == "café"
    assert decode_text(b"abc", "no-such-charset") == "abc"


def test_json_view_parses_or_says_not_json():
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_json(b"null") is None
    assert parse_json(b"{broken") is NOT_JSON
    assert parse_json(b"") is NOT_JSON
    assert parse_json(b"[" * 100_000 + b"]" * 100_000) is NOT_JSON  # too deep: not a crash


def test_gzip_deflate_and_br_are_decoded_and_the_encodings_named():
    payload = b'{"event":"x"}' * 100
    assert decode_content(gzip.compress(payload), "gzip").data == payload
    assert decode_content(zlib.compress(payload), "deflate").data == payload
    raw_deflate = zlib.compressobj(wbits=-15)
    assert decode_content(raw_deflate.compress(payload) + raw_deflate.flush(), "deflate").data == payload
    decoded = decode_content(brotli.compress(payload), "br")
    assert decoded.data == payload and decoded.encodings == ("br",)
    stacked = decode_content(brotli.compress(gzip.compress(payload)), "gzip, br")
    assert stacked.data == payload and stacked.encodings == ("br", "gzip")


def test_corrupt_gzip_reports_an_error_and_keeps_the_raw_bytes():
    decoded = decode_content(b"\x1f\x8bnot really gzip", "gzip")
    assert decoded.error and "gzip" in decoded.error
    assert decoded.data == b"\x1f\x8bnot really gzip"
    truncated = decode_content(gzip.compress(b"x" * 1000)[:-12], "gzip")
    assert truncated.error is not None


def test_a_gzip_bomb_is_capped_not_inflated():
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    decoded = decode_content(bomb, "gzip", limit=1024 * 1024)
    assert decoded.truncated and len(decoded.data) == 1024 * 1024
    br_bomb = brotli.compress(b"\0" * (64 * 1024 * 1024))
    assert decode_content(br_bomb, "br", limit=1024 * 1024).truncated


def test_unknown_encoding_is_an_error_not_a_crash():
    assert decode_content(b"abc", "zstd").error == "unsupported content-encoding 'zstd'"
    assert decode_content(b"abc", "identity").data == b"abc"


def test_body_fields_round_trip_byte_exact():
    for data in (b"", b"plain", "ünïcode".encode(), b"\xff\x00\xfe", b"\x00" * 10):
        assert decode_body_fields(encode_body_fields(data)) == data
    assert "body_base64" in encode_body_fields(b"\xff")
    assert "body_text" in encode_body_fields(b"{}")


def test_escape_controls_neutralises_terminal_sequences():
    hostile = "\x1b[31mred\x1b[0m\x07\x9b2J\u202egnp.exe\rover"
    safe = escape_controls(hostile)
    assert "\x1b" not in safe and "\x07" not in safe and "\x9b" not in safe and "\u202e" not in safe
    assert safe.startswith("\\x1b[31mred")
    assert escape_controls("a\nb\tc") == "a\nb\tc"
    assert escape_controls("a\nb", keep_newlines=False) == "a\\x0ab"
    assert escape_controls(b"\xff".decode("utf-8", "surrogateescape")) == "\\xff"


def test_binary_detection_and_hexdump():
    assert looks_binary(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert not looks_binary(b'{"a":1}\n')
    dump = hexdump(b"AB\x00" * 10)
    assert dump.splitlines()[0].startswith("00000000  41 42 00")
    assert "more bytes" in hexdump(b"x" * 5000, limit=16)


def test_content_type_parameters():
    ct = parse_content_type('Application/JSON; charset="UTF-8"')
    assert ct.mime == "application/json" and ct.charset == "UTF-8"
    assert parse_content_type(None).mime == ""
