"""One filter language for `ls --filter`, the TUI filter bar and batch selection.

    method:POST path:/hooks/* provider:stripe event:invoice.* verdict:invalid
    status:5xx ct:application/json since:10m until:2026-11-28T12:00 $.data.object.amount>1000
    anything else is free text searched in the path and the body

Terms combine with AND; a repeated key (method:POST method:PUT) matches either value.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hookinspect.body import NOT_JSON
from hookinspect.errors import UsageError, did_you_mean
from hookinspect.formats.patterns import compile_pattern
from hookinspect.model import Delivery
from hookinspect.values import parse_number, parse_time_us

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_JSON_TEST = re.compile(r"^(\$[^<>=!~]*)\s*(>=|<=|!=|==|=|>|<|~)?\s*(.*)$")
_STATUS = re.compile(r"^(?:[1-5]xx|[1-5]\d\d|error|none|ok|failed)$")

KEYS = ("method", "path", "provider", "event", "verdict", "status", "ct", "since", "until", "text")
VERDICTS = ("valid", "invalid", "expired", "malformed", "unsigned", "no-secret")
# `word:value` with a word that is not a key is a typo far more often than text to look for.
_KEYED_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*):")
_OPERATOR_CHARS = "<>=!~"


def checked_verdict(value: str) -> str:
    verdict = value.lower()
    if verdict not in VERDICTS:
        raise UsageError(f"unknown verdict {value!r}{did_you_mean(value, VERDICTS)}", "one of " + ", ".join(VERDICTS))
    return verdict


def checked_provider(value: str) -> str:
    # Imported here: the registry pulls in every signature scheme, which most filters never need.
    from hookinspect.signing.registry import provider_named

    return provider_named(value).name


@dataclass(frozen=True)
class JsonTest:
    path: tuple[str | int, ...]
    op: str | None  # None: the path exists
    value: Any = None

    def matches(self, doc: Any) -> bool:
        if doc is NOT_JSON:
            return False
        found, current = walk_json(doc, self.path)
        if not found:
            return False
        if self.op is None:
            return True
        if self.op == "~":
            return self.value.search(str(current))  # a Pattern: linear time, whoever wrote it
        if self.op in ("=", "=="):
            return current == self.value or str(current) == str(self.value)
        if self.op == "!=":
            return not (current == self.value or str(current) == str(self.value))
        try:
            if self.op == ">":
                return current > self.value
            if self.op == "<":
                return current < self.value
            if self.op == ">=":
                return current >= self.value
            return current <= self.value
        except TypeError:
            return False


def walk_json(doc: Any, path: tuple[str | int, ...]) -> tuple[bool, Any]:
    current = doc
    for step in path:
        if isinstance(step, int) and isinstance(current, list) and -len(current) <= step < len(current):
            current = current[step]
        elif isinstance(step, str) and isinstance(current, dict) and step in current:
            current = current[step]
        else:
            return False, None
    return True, current


@dataclass
class DeliveryFilter:
    methods: list[str] = field(default_factory=list)
    path_globs: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    event_globs: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    since_us: int | None = None
    until_us: int | None = None
    texts: list[str] = field(default_factory=list)
    json_tests: list[JsonTest] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return self == DeliveryFilter()

    @property
    def reads_bodies(self) -> bool:
        """JSON tests and text search look at decoded bodies, which SQL cannot."""
        return bool(self.json_tests or self.texts)

    def body_matches(self, path: str, decoded_body: bytes, document: Any) -> bool:
        """The tests SQL could only narrow: text in the path or decoded body, and JSON tests."""
        for text in self.texts:
            if text not in path and text.encode("utf-8") not in decoded_body:
                return False
        return all(test.matches(document) for test in self.json_tests)

    def matches(self, delivery: Delivery) -> bool:
        """The filter on one delivery in memory, as the store's SQL would judge it stored (a
        relay's claims). Statuses are about attempts, which a delivery in flight has none of."""
        if self.methods and delivery.method not in self.methods:
            return False
        checks = ((self.path_globs, delivery.path), (self.providers, delivery.provider),
                  (self.event_globs, delivery.event_type), (self.verdicts, delivery.verdict),
                  (content_type_globs(self.content_types), (delivery.headers.get("content-type") or "").lower()))
        for globs, value in checks:
            if globs and (value is None or not any(fnmatch.fnmatchcase(value, glob) for glob in globs)):
                return False
        if self.statuses:
            return False
        if self.since_us is not None and delivery.received_us < self.since_us:
            return False
        if self.until_us is not None and delivery.received_us > self.until_us:
            return False
        if not self.reads_bodies:
            return True
        return self.body_matches(delivery.path, delivery.decoded().data if self.texts else b"",
                                 delivery.json() if self.json_tests else None)

    def merged(self, other: DeliveryFilter) -> DeliveryFilter:
        out = DeliveryFilter()
        for name in ("methods", "path_globs", "providers", "event_globs", "verdicts", "statuses",
                     "content_types", "texts", "json_tests"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.since_us = _max_or_none(self.since_us, other.since_us)
        out.until_us = _min_or_none(self.until_us, other.until_us)
        return out


def content_type_globs(content_types: list[str]) -> list[str]:
    """`ct:` values as globs over a lower-cased Content-Type: `json` is application/json,
    text/json and application/vnd.api+json; `text/plain` is that type with any parameters."""
    globs = []
    for ct in content_types:
        if any(c in ct for c in "*?["):
            globs.append(ct)
        elif "/" in ct:
            globs.append(ct + "*")
        else:
            globs += [f"*/{ct}*", f"*+{ct}*", f"{ct}*"]
    return globs


def _max_or_none(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min_or_none(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def parse_time(value: str, now_us: int | None = None) -> int:
    """`10m`, `2h`, `3d` ago, or an ISO date/time (UTC unless it says otherwise) -> epoch µs."""
    value = value.strip()
    match = _RELATIVE.match(value)
    if match:
        now = now_us if now_us is not None else int(datetime.now(UTC).timestamp() * 1_000_000)
        ago = float(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1_000_000
        return now - int(min(ago, now))  # further back than 1970 is "from the start" (and may be inf)
    try:
        return parse_time_us(value)
    except ValueError:
        raise UsageError(f"cannot read time {value!r}", "use 10m, 2h, 3d or an ISO time such as 2026-11-28T12:00") from None


def parse_json_path(text: str) -> tuple[str | int, ...]:
    """`$.data.items[0].id` -> ("data", "items", 0, "id")."""
    if not text.startswith("$"):
        raise UsageError(f"JSON path {text!r} must start with $")
    steps: list[str | int] = []
    for match in re.finditer(r"\.([^.\[\]]+)|\[(-?\d+)\]|\[\"([^\"]*)\"\]|\['([^']*)'\]", text[1:]):
        name, index, quoted1, quoted2 = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else (quoted1 if quoted1 is not None else quoted2))
    return tuple(steps)


def _json_literal(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text.strip("'\"")


def parse_filter(expression: str | None) -> DeliveryFilter:
    """Parse the filter language; a malformed term is a UsageError naming it."""
    result = DeliveryFilter()
    if not expression or not expression.strip():
        return result
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in expression):  # undecodable bytes pasted into a terminal
        raise UsageError("the filter has bytes that are not UTF-8 text", "type the text to look for, or a $.path test")
    try:
        terms = shlex.split(expression)
    except ValueError as exc:
        raise UsageError(f"cannot parse filter: {exc}") from None
    for term in terms:
        if term in ("OR", "AND", "NOT", "||", "&&"):
            raise UsageError(f"the filter language has no {term}: terms combine with AND, and a repeated key means "
                             "either value", "method:POST method:PUT is POST or PUT; for text, write text:" + term)
        if term.startswith("$"):
            match = _JSON_TEST.match(term)
            assert match is not None  # the pattern accepts any string starting with $
            path_text, op, value = match.groups()
            if (op is None and value) or (op and value[:1] in _OPERATOR_CHARS) or (op and op not in ("=", "==", "!=") and not value):
                raise UsageError(f"bad JSON test {term!r}", "write it as $.path>1000, $.path=value, $.path~regex or $.path")
            literal = (compile_pattern(value) if op == "~" else _json_literal(value)) if op else None
            result.json_tests.append(JsonTest(parse_json_path(path_text), op, literal))
            continue
        key, colon, value = term.partition(":")
        if not colon or key.lower() not in KEYS:
            if _KEYED_TERM.match(term):
                raise UsageError(f"unknown filter key {key!r}{did_you_mean(key, KEYS)}",
                                 "keys: " + ", ".join(KEYS) + f"; to look for the text itself write text:{shlex.quote(term)}")
            result.texts.append(term)
            continue
        key = key.lower()
        if not value:
            raise UsageError(f"filter term {term!r} has no value")
        if key == "method":
            result.methods.append(value.upper())
        elif key == "path":
            result.path_globs.append(value)
        elif key == "provider":
            result.providers.append(checked_provider(value))
        elif key == "event":
            result.event_globs.append(value)
        elif key == "verdict":
            result.verdicts.append(checked_verdict(value))
        elif key == "status":
            if not _STATUS.match(value.lower()):
                raise UsageError(f"bad status {value!r}", "use 200, 5xx, ok, failed, error or none")
            result.statuses.append(value.lower())
        elif key == "ct":
            result.content_types.append(value.lower())
        elif key == "since":
            result.since_us = parse_time(value)
        elif key == "until":
            result.until_us = parse_time(value)
        else:
            result.texts.append(value)
    return result


def parse_refs(refs: list[str]) -> list[int | str]:
    """`["40-45", "47", "3f2a"]` -> sequence numbers (ranges expanded) and id prefixes."""
    out: list[int | str] = []
    for ref in refs:
        for part in ref.split(","):
            part = part.strip().lstrip("#")
            if not part:
                continue
            low, dash, high = part.partition("-")
            a, b, number = parse_number(low), parse_number(high), parse_number(part)
            if dash and a is not None and b is not None:
                if b < a:
                    raise UsageError(f"range {part!r} runs backwards")
                if b - a > 1_000_000:
                    raise UsageError(f"range {part!r} is too large")
                out.extend(range(a, b + 1))
            elif number is not None:
                out.append(number)
            elif all(c in "0123456789abcdef" for c in part.lower()):
                out.append(part.lower())
            else:
                raise UsageError(f"{part!r} is not a delivery number, range (40-45) or id")
    return out
