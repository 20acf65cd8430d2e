"""Lines every shell shows."""


def test_the_live_line_masks_secret_query_values():
    from hookinspect.views.delivery import delivery_line
    from hookinspect.views.text import plain_text
    from tests.factories import make_delivery

    delivery = make_delivery(query="token=sekret&page=2&client_secret=x")
    delivery.seq = 3
    line = plain_text([delivery_line(delivery)])
    assert "sekret" not in line and "token=REDACTED&page=2&client_secret=REDACTED" in line


def test_a_real_control_byte_and_its_spelling_in_text_look_different():
    from hookinspect.views.body import body_lines
    from hookinspect.views.text import ESCAPE_STYLE
    from tests.factories import make_delivery

    [line] = body_lines(make_delivery(b"real \x1b and typed \\x1b", content_type="text/plain"))
    assert "".join(text for text, _ in line) == "real \\x1b and typed \\x1b"
    styled = [text for text, style in line if ESCAPE_STYLE in style]
    assert styled == ["\\x1b"]  # only the byte that was really there
