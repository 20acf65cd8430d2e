"""Fixture files: small TinyDB JSON documents of deliveries and what the backend should answer.

Layout (TinyDB's own, so TinyDB queries work on it):

    {"meta": {"1": {"format": "hookinspect-fixture", "version": 1}},
     "deliveries": {"1": {"name": ..., "provider": ..., "event_type": ...,
                          "request": {"method", "path", "query", "headers": [[k, v]...],
                                      "body_text": ... | "body_base64": ...},
                          "expect": {"status": 200 | "2xx" | [200, 202],
                                     "json": {"$.received": true}, "max_ms": 500}}}}

Text bodies stay text and binary bodies are base64 under an explicit key, so a file is
byte-exact and still readable in a review. Older versions are upgraded on load.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.storages import MemoryStorage

from hookinspect.body import NOT_JSON, decode_body_fields, encode_body_fields, json_text
from hookinspect.errors import UsageError
from hookinspect.formats.admissible import why_not_capturable
from hookinspect.formats.filters import parse_json_path, walk_json
from hookinspect.model import Attempt, Delivery, ExportItem, Headers

_STRING = r'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(r"\[\s*(" + _STRING + r"),\s*(" + _STRING + r")\s*\]")

FORMAT = "hookinspect-fixture"
VERSION = 1


@dataclass
class Expectation:
    status: int | str | list[int] | None = None
    json: dict[str, Any] = field(default_factory=dict)
    max_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.status is not None:
            out["status"] = self.status
        if self.json:
            out["json"] = self.json
        if self.max_ms is not None:
            out["max_ms"] = self.max_ms
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any] | None, where: str) -> Expectation:
        obj = obj or {}
        unknown = set(obj) - {"status", "json", "max_ms"}
        if unknown:
            raise UsageError(f"{where}: unknown expectation {', '.join(sorted(unknown))}", "use status, json, max_ms")
        status = obj.get("status")
        if status is not None and not _valid_status(status):
            raise UsageError(f"{where}: status must be a code (200), a class (\"2xx\") or a list of codes")
        if not isinstance(obj.get("json", {}), dict) or any(not k.startswith("$") for k in obj.get("json", {})):
            raise UsageError(f"{where}: json expectations map JSON paths to values, e.g. {{\"$.received\": true}}")
        max_ms = obj.get("max_ms")
        if max_ms is not None and (type(max_ms) not in (int, float) or not 0 < max_ms < 1e12):  # NaN fails too
            raise UsageError(f"{where}: max_ms must be a number of milliseconds above 0")
        return cls(status, dict(obj.get("json") or {}), max_ms)


def _valid_status(status: Any) -> bool:
    if isinstance(status, bool):
        return False
    if isinstance(status, int):
        return 100 <= status <= 599
    if isinstance(status, str):
        return len(status) == 3 and status[0] in "12345" and status[1:].lower() == "xx"
    return isinstance(status, list) and bool(status) and all(isinstance(s, int) and not isinstance(s, bool) for s in status)


@dataclass
class FixtureRecord:
    name: str
    delivery: Delivery
    expect: Expectation
    source: str = ""  # file the record came from, for reports
    record_id: int | None = None


# Values that differ on every run of the same request whatever the backend: generated ids and
# times. With a single answer to learn from, fields holding them are not expected.
_VOLATILE_VALUE = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # a UUID
                             r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*"  # an ISO time
                             r"|[A-Za-z]{2,8}_[A-Za-z0-9]{10,})$", re.IGNORECASE)  # a prefixed id (evt_…, req_…)


def expectation_from(attempts: list[Attempt], with_json: bool) -> Expectation:
    """What the successful answers said: the latest's status, and optionally the top-level JSON
    scalars that every successful answer agreed on (an id, a time or a counter that changed
    between two answers would fail the first check; with one answer, id- and time-shaped values
    are left out)."""
    answers = [a.response for a in attempts if a.is_success and a.response is not None]
    if not answers:
        return Expectation(status="2xx")
    expect = Expectation(status=answers[-1].status)
    if with_json:
        docs = [doc for doc in (answer.json() for answer in answers) if isinstance(doc, dict)]
        if docs:
            latest = docs[-1]
            expect.json = {f"$.{k}": v for k, v in latest.items()
                           if (isinstance(v, str | int | float | bool) or v is None)
                           and all(k in doc and doc[k] == v for doc in docs)
                           and not (len(docs) == 1 and isinstance(v, str) and _VOLATILE_VALUE.match(v))}
    return expect


def record_name(delivery: Delivery) -> str:
    what = " ".join(x for x in (delivery.provider, delivery.event_type) if x) or f"{delivery.method} {delivery.path}"
    return f"{what} #{delivery.seq}" if delivery.seq else what


def fixture_document(records: list[tuple[Delivery, Expectation]]) -> str:
    """The fixture file text for deliveries and their expectations."""
    db = TinyDB(storage=MemoryStorage)
    db.table("meta").insert({"format": FORMAT, "version": VERSION})
    table = db.table("deliveries")
    for delivery, expect in records:
        table.insert({
            "name": record_name(delivery),
            "provider": delivery.provider,
            "event_type": delivery.event_type,
            "request": {
                "method": delivery.method, "path": delivery.path, "query": delivery.query,
                "headers": [[k, v] for k, v in delivery.headers],
                **encode_body_fields(delivery.body),
            },
            "expect": expect.to_dict(),
        })
    text = json_text(db.storage.memory)  # type: ignore[attr-defined]
    # One header pair per line keeps files short and diffs readable in review.
    return _PAIR.sub(r"[\1, \2]", text) + "\n"


def _migrate(version: int, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Version 1 is the first; future upgrades go here, one step at a time.
    return records


def load_fixture(path: str | Path, only_events: list[str] | None = None) -> list[FixtureRecord]:
    """Records of a fixture file, optionally only events matching a glob; clear errors for bad files."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read fixture {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a fixture file (not UTF-8 text)") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    return load_fixture_document(raw, str(path), only_events)


def load_fixture_document(raw: Any, source: str, only_events: list[str] | None = None) -> list[FixtureRecord]:
    """Records of an already parsed fixture document (see load_fixture)."""
    path = Path(source)
    meta = list((raw.get("meta") or {}).values()) if isinstance(raw, dict) else []
    if not meta or meta[0].get("format") != FORMAT:
        raise UsageError(f"{path} is not a hookinspect fixture file", "make one with `hookinspect export ... --format fixture`")
    version = meta[0].get("version")
    if not isinstance(version, int) or version > VERSION:
        raise UsageError(f"{path} has fixture version {version!r}; this hookinspect reads up to {VERSION}")
    db = TinyDB(storage=MemoryStorage)
    db.storage.write(raw)  # type: ignore[attr-defined]
    table = db.table("deliveries")
    documents = table.all()
    if only_events:
        entry = Query()
        documents = table.search(entry.event_type.test(
            lambda value: isinstance(value, str) and any(fnmatch.fnmatchcase(value, g) for g in only_events)))
    records = []
    for doc in _migrate(version, documents):
        where = f"{path.name} record {doc.doc_id}"
        try:
            req = doc["request"]
            delivery = Delivery(
                method=req["method"], path=req["path"], query=req.get("query") or "",
                headers=Headers((str(k), str(v)) for k, v in req.get("headers") or []), body=decode_body_fields(req),
                provider=doc.get("provider"), event_type=doc.get("event_type"), source="fixture",
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where} is malformed ({exc.__class__.__name__}: {exc})") from None
        problem = why_not_capturable(ExportItem(delivery, []))
        if problem is not None:  # a fixture file is replayed against a backend as it says
            raise UsageError(f"{where} {problem}")
        records.append(FixtureRecord(doc.get("name") or record_name(delivery), delivery,
                                     Expectation.from_dict(doc.get("expect"), where), source, doc.doc_id))
    return records


def json_value_at(doc: Any, path: str) -> tuple[bool, Any]:
    """(found, value) for a `$.a.b[0]` path in a parsed JSON document."""
    if doc is NOT_JSON:
        return False, None
    return walk_json(doc, parse_json_path(path))
