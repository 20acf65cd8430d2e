"""What counts as loopback: the addresses whose servers only this machine can reach (a relay's
/metrics and a web inspector without a token are open there, and only there)."""

from hookinspect.net.guard import HostRule, is_loopback


def test_loopback_detection():
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.0.2.1", "relay.example.com", ""))


def test_a_public_bind_answers_any_ip_a_loopback_one_only_its_names():
    assert HostRule.for_bind("0.0.0.0").allows("203.0.113.7:8080")
    assert not HostRule.for_bind("127.0.0.1").allows("203.0.113.7:8080")
    assert not HostRule.for_bind("127.0.0.1").allows("evil.example")
