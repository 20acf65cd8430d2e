"""Rate limits of one relay process: a token bucket per key (a channel, a client address).
A shared store brings its own (relay/redis_storage.py: SharedRateLimiter) that holds across
every instance."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

# Buckets kept at most; past it they all start afresh (strangers' keys must not pile up).
MAX_BUCKETS = 50_000


class RateLimiter(Protocol):
    async def allow(self, key: str, rate: float, burst: int) -> bool:
        """Take one token from `key`'s bucket (refilled at `rate` per second up to `burst`)."""

    async def aclose(self) -> None: ...


@dataclass
class _Bucket:
    tokens: float
    updated: float = field(default_factory=time.monotonic)


class LocalRateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    async def allow(self, key: str, rate: float, burst: int) -> bool:
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.clear()
        bucket = self._buckets.setdefault(key, _Bucket(float(burst)))
        now = time.monotonic()
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    async def aclose(self) -> None:
        pass
