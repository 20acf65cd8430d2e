"""`hookinspect import`: HAR, fixture and JSON files turned into deliveries, recorded through
the one capture path (so they get provider, event type and verdict like any capture)."""

from __future__ import annotations

import json
import re
from typing import Any

from hookinspect.errors import UsageError
from hookinspect.har import load_har
from hookinspect.model import ERROR_KINDS, MAX_NUMBER, Attempt, Delivery, ExportItem
from hookinspect.recorder import Recorder
from hookinspect.signing.base import VERDICTS
from hookinspect.store.fixtures import load_fixture_document


def load_json(document: Any) -> list[ExportItem]:
    """Our own `export --format json` / `show --json` output."""
    objects = document if isinstance(document, list) else [document]
    items = []
    for number, obj in enumerate(objects, start=1):
        try:
            delivery = Delivery.from_dict(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"JSON entry {number} is not a delivery ({exc})") from None
        delivery.source = "import"
        try:
            attempts = [Attempt.from_dict(a, kind="import") for a in obj.get("attempts") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"JSON entry {number} has an attempt that is not one ({exc})") from None
        items.append(ExportItem(delivery, attempts, has_own_id=bool(obj.get("id"))))
    return items


def parse_import(data: bytes, name: str = "input") -> list[ExportItem]:
    """Detect the format (HAR, fixture file or our JSON) and load it; UsageError, naming the
    entry and the field, for anything a capture could not have held."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise UsageError(f"{name} is not JSON (HAR and hookinspect JSON exports are)") from None
    if isinstance(document, dict) and "log" in document:
        items = load_har(document)
    elif isinstance(document, dict) and "meta" in document and "deliveries" in document:
        items = [ExportItem(record.delivery, [], has_own_id=False) for record in load_fixture_document(document, name)]
    elif isinstance(document, list | dict):
        items = load_json(document)
    else:
        raise UsageError(f"{name}: neither a HAR file nor a hookinspect JSON export")
    for number, item in enumerate(items, start=1):
        problem = _not_importable(item)
        if problem is not None:
            raise UsageError(f"{name}: entry {number} {problem}; nothing was imported")
    return items


# RFC 9110's token, which is what a method is (with a sane length).
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}")
_BREAKS_A_LINE = re.compile(r"[\r\n\x00]")


def _not_importable(item: ExportItem) -> str | None:
    """Why `item` is not something a capture could hold (and the store, replays and every
    view rely on), or None. An imported file may come from anyone."""
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


async def import_deliveries(recorder: Recorder, items: list[ExportItem]) -> tuple[int, int]:
    """Record imported deliveries with their attempts; returns (added, skipped as already stored).

    A delivery is the same as a stored one when it has the same id (exports carry it); one
    without an id (a browser's HAR, a fixture) when it has the same content and arrival time,
    so two distinct deliveries with the same body are both kept.
    """
    known_ids, known_contents = await recorder.workspace.writer.call(lambda store: store.identities())
    added = skipped = 0
    for item in items:
        digest = item.delivery.content_hash()
        content_key = (digest, item.delivery.received_us)
        if (item.delivery.id in known_ids) if item.has_own_id else (content_key in known_contents):
            skipped += 1
            continue
        known_ids.add(item.delivery.id)
        known_contents.add(content_key)
        await recorder.record(item.delivery, attempts=item.attempts, content_hash=digest)
        added += 1
    return added, skipped
