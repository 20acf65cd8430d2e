"""`hookinspect import`: HAR, fixture and JSON files turned into deliveries, recorded through
the one capture path (so they get provider, event type and verdict like any capture)."""

from __future__ import annotations

import json
from typing import Any

from hookinspect.errors import UsageError
from hookinspect.formats.admissible import why_not_capturable
from hookinspect.formats.fixtures import load_fixture_document
from hookinspect.formats.har import load_har
from hookinspect.model import IMPORTED_KIND, Attempt, Delivery, ExportItem
from hookinspect.recorder import Recorder


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
        problem = why_not_capturable(item)
        if problem is not None:
            raise UsageError(f"{name}: entry {number} {problem}; nothing was imported")
        for attempt in item.attempts:
            # A file says where it was sent; that is a stranger's claim, never a target of ours
            # (replay passes over these: see send targets in replay.default_targets).
            attempt.kind = IMPORTED_KIND
    return items


async def import_deliveries(recorder: Recorder, items: list[ExportItem]) -> tuple[int, int]:
    """Record imported deliveries with their attempts; returns (added, skipped as already stored).

    A delivery is the same as a stored one when it has the same id (exports carry it); one
    without an id (a browser's HAR, a fixture) when it has the same content and arrival time,
    so two distinct deliveries with the same body are both kept.
    """
    known_ids, known_contents = await recorder.workspace.writer.submit(lambda store: store.identities())
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
