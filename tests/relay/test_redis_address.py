"""--storage URLs: one Redis as redis-py reads it, or a primary found through Sentinel; a wrong
one is one clear line before anything starts."""

import subprocess

import pytest

from hookinspect.errors import UsageError
from hookinspect.relay.redis_address import parse_redis_address
from tests.factories import hookinspect_cmd


def test_a_sentinel_address_names_its_sentinels_service_db_and_password():
    address = parse_redis_address("redis+sentinel://:p%40ss@10.0.0.1:26379,[::1]:26380/relay/2")
    assert address.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (address.service, address.db, address.password) == ("relay", 2, "p@ss")
    assert parse_redis_address("redis+sentinel://h:26379/relay").db == 0
    assert parse_redis_address("redis://127.0.0.1:6379/0").sentinels == ()


@pytest.mark.parametrize("url", ["redis+sentinel://h/relay", "redis+sentinel://h:port/relay",
                                 "redis+sentinel://h:26379/", "redis+sentinel://h:26379/relay/x",
                                 "redis+sentinel://h:99999/relay"])
def test_a_wrong_sentinel_address_says_what_is_wrong(url):
    with pytest.raises(UsageError):
        parse_redis_address(url)


def test_the_relay_refuses_a_wrong_storage_url_or_replicas_without_redis_in_one_line(tmp_path):
    for args, said in ((["--storage", "redis+sentinel://h/relay"], "is not host:port"),
                       (["--replicas-ack", "1", "--data", str(tmp_path / "r")], "--replicas-ack needs --storage"),
                       (["--log-format", "xml"], "choose text or json")):
        result = subprocess.run(hookinspect_cmd("relay", "--port", "1", *args), capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
