"""Lines every shell shows."""


def test_the_live_line_masks_secret_query_values():
    from hookinspect.views.delivery import delivery_line
    from hookinspect.views.text import plain_text
    from tests.factories import make_delivery

    delivery = make_delivery(query="token=sekret&page=2&client_secret=x")
    delivery.seq = 3
    line = plain_text([delivery_line(delivery)])
    assert "sekret" not in line and "token=REDACTED&page=2&client_secret=REDACTED" in line
