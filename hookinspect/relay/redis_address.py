"""Where the relay's Redis is: one server (`redis://`, `rediss://`, `unix://`, as redis-py reads
them), or a primary found through Sentinel, which follows it across a failover:

    redis+sentinel://[:password@]host:port[,host:port…]/service[/db]

The password is the primary's (Sentinels on loopback or a private network usually have none).
Clients made from a Sentinel address ask the Sentinels for the primary on every new
connection, so after a failover the next connection reaches the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from hookinspect.errors import UsageError

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_SECONDS = 2.0  # a Sentinel that does not answer in this is skipped for the next
_SENTINEL_OPTIONS = {"socket_timeout": SENTINEL_SECONDS, "socket_connect_timeout": SENTINEL_SECONDS}


@dataclass(frozen=True)
class RedisAddress:
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    password: str | None = None

    def client(self, **options: Any) -> redis.Redis:
        if not self.sentinels:
            return redis.Redis.from_url(self.url, **options)
        sentinel = redis.sentinel.Sentinel(self.sentinels, sentinel_kwargs=_SENTINEL_OPTIONS)
        return sentinel.master_for(self.service, db=self.db, password=self.password, **options)

    def async_client(self, **options: Any) -> redis.asyncio.Redis:
        if not self.sentinels:
            return redis.asyncio.Redis.from_url(self.url, **options)
        sentinel = redis.asyncio.sentinel.Sentinel(self.sentinels, sentinel_kwargs=_SENTINEL_OPTIONS)
        return sentinel.master_for(self.service, db=self.db, password=self.password, **options)


def parse_redis_address(url: str) -> RedisAddress:
    """The address a --storage URL names; a UsageError says what is wrong with one."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return RedisAddress(url)
    example = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0"
    _, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--storage: {host!r} is not host:port (for example {example})")
        sentinels.append((name.strip("[]"), int(port)))
    path = [part for part in parts.path.split("/") if part]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise UsageError(f"--storage: name the Sentinel service and optionally a db number, e.g. {example}")
    password = unquote(parts.password) if parts.password else None
    return RedisAddress(url, tuple(sentinels), unquote(path[0]), int(path[1]) if len(path) == 2 else 0, password)
