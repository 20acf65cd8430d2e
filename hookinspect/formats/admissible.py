"""What a capture could hold: the check for deliveries that arrive as files (an import, a
fixture), which may come from anyone and did not pass through an HTTP parser."""

from __future__ import annotations

import re

from hookinspect.model import ERROR_KINDS, ExportItem
from hookinspect.signing.base import VERDICTS
from hookinspect.values import MAX_NUMBER

# RFC 9110's token, which is what a method is (with a sane length).
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}")
_BREAKS_A_LINE = re.compile(r"[\r\n\x00]")


def why_not_capturable(item: ExportItem) -> str | None:
    """Why `item` is not something a capture could hold (and the store, replays and every
    view rely on), or None: the sentence's end after "entry N"."""
    delivery = item.delivery
    requests = [("", delivery.method, delivery.headers)]
    requests += [(f"attempt {n}'s ", a.request.method, a.request.headers) for n, a in enumerate(item.attempts, 1)]
    for whose, method, headers in requests:
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            return f"has {whose}method {str(method)[:40]!r}, which is not an HTTP method"
        if any(_BREAKS_A_LINE.search(text) for pair in headers.pairs() for text in pair):
            return f"has a {whose}header with a line break or NUL in it"
    texts = (delivery.path, delivery.query, delivery.id, delivery.remote_addr, delivery.provider, delivery.event_type,
             delivery.verdict_reason)
    if not all(text is None or isinstance(text, str) for text in texts):
        return "has a field that should be text and is not"
    if delivery.verdict is not None and delivery.verdict not in VERDICTS:
        return f"has verdict {str(delivery.verdict)[:40]!r} (one of {', '.join(VERDICTS)})"
    if not 0 <= delivery.received_us <= MAX_NUMBER:
        return "has a time out of range"
    for n, attempt in enumerate(item.attempts, 1):
        status = attempt.response.status if attempt.response is not None else 0
        if type(status) is not int or not 0 <= status <= 999:
            return f"has attempt {n} with status {str(status)[:40]!r}, which is not an HTTP status"
        if attempt.error_kind is not None and attempt.error_kind not in ERROR_KINDS:
            return f"has attempt {n} with error kind {str(attempt.error_kind)[:40]!r}"
        latency = attempt.latency_ms
        if latency is not None and (not isinstance(latency, int | float) or not 0 <= latency < 1e12):
            return f"has attempt {n} with latency {str(latency)[:40]!r}"
        if not isinstance(attempt.target_url, str) or not 0 <= attempt.started_us <= MAX_NUMBER:
            return f"has attempt {n} with a target or time that is not one"
    return None
