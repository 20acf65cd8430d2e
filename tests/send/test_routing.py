import pytest

from hookinspect.errors import UsageError
from hookinspect.send.routing import parse_routes, targets_for
from tests.factories import make_delivery

ROUTES = parse_routes([
    {"path": "/github/*", "to": "http://127.0.0.1:4000/gh"},
    {"header": "Stripe-Signature", "json": "$.type~^invoice\\.", "to": ["http://127.0.0.1:3000/stripe", "http://127.0.0.1:3001/audit"]},
    {"header": "X-Shopify-Topic: orders/*", "to": "http://127.0.0.1:5000/shop"},
])


def test_routes_pick_targets_by_path_header_and_json():
    github = make_delivery(path="/github/push")
    invoice = make_delivery(b'{"type":"invoice.paid"}', path="/s", headers=[("Stripe-Signature", "t=1,v1=x")])
    charge = make_delivery(b'{"type":"charge.succeeded"}', path="/s", headers=[("Stripe-Signature", "t=1,v1=x")])
    order = make_delivery(path="/shop", headers=[("X-Shopify-Topic", "orders/create")])
    default = ["http://127.0.0.1:9000/"]
    assert targets_for(github, ROUTES, default) == ["http://127.0.0.1:4000/gh"]
    assert targets_for(invoice, ROUTES, default) == ["http://127.0.0.1:3000/stripe", "http://127.0.0.1:3001/audit"]
    assert targets_for(charge, ROUTES, default) == default
    assert targets_for(order, ROUTES, default) == ["http://127.0.0.1:5000/shop"]


def test_malformed_routes_are_usage_errors():
    with pytest.raises(UsageError):
        parse_routes([{"path": "/x"}])
    with pytest.raises(UsageError):
        parse_routes([{"to": "not a url"}])
    with pytest.raises(UsageError):
        parse_routes({"to": "http://x/"})
