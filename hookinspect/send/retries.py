"""When a failed forward is tried again: Standard Webhooks' schedule, a target's Retry-After
(bounded), and when an item is done or dead."""

from __future__ import annotations

import email.utils
import time

from hookinspect.model import Attempt

# Seconds to wait before each retry: Standard Webhooks' recommended schedule
# (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
DEFAULT_MAX_ATTEMPTS = len(DEFAULT_SCHEDULE)
# The longest wait a target's Retry-After can impose on one delivery.
MAX_RETRY_AFTER_SECONDS = 86_400.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date), at most a day:
    the header comes from whatever answers at the target, and any digits may be in it."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(0.0, moment.timestamp() - (now if now is not None else time.time())), MAX_RETRY_AFTER_SECONDS)


def next_state(attempt: Attempt, tries: int, max_attempts: int, schedule: tuple[float, ...]) -> tuple[str, float]:
    """(state, delay in seconds) after an attempt: done on 2xx, dead on 410 or when out of tries."""
    if attempt.is_success:
        return "done", 0.0
    if attempt.response is not None and attempt.response.status == 410:
        return "dead", 0.0
    if tries >= max_attempts:
        return "dead", 0.0
    delay = float(schedule[min(tries, len(schedule) - 1)])
    if attempt.response is not None:
        asked = retry_after_seconds(attempt.response.headers.get("retry-after"))
        if asked is not None:
            delay = max(delay, asked)
    return "pending", delay
