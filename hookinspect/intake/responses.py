"""What the receiver answers, per path: status, headers, body, delay, and flaky rules.

    --respond '/hooks/slow/*=200,delay=2'
    --respond '/hooks/flaky/*=500,every=3'            every third request gets 500
    --respond '/hooks/retry/*=503,times=2'            the first two get 503, then the next rule
    --respond '/hooks/*=500,chance=0.2,body={"error":"boom"}'

or `[[responses]]` tables in hookinspect.toml. The first rule whose glob matches the path and
whose flaky condition fires answers; otherwise the next one is tried, then the default answer
(--status, --response-body). Counters are per receiver process.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookinspect.errors import UsageError, did_you_mean


@dataclass
class MockResponse:
    """What the receiver answers when it does not proxy: status, headers, body, delay."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None  # None: a small JSON acknowledgement naming the delivery
    delay: float = 0.0


@dataclass
class ResponseRule:
    """A path glob, its answer, and when it applies: always, `every` Nth match, the first
    `times` matches, or by `chance`."""

    glob: str
    response: MockResponse
    every: int | None = None
    times: int | None = None
    chance: float | None = None
    _seen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def answer(self, path: str) -> MockResponse | None:
        """This rule's answer for `path`, or None to try the next rule."""
        if not fnmatch.fnmatchcase(path, self.glob):
            return None
        with self._lock:  # a receiver's forward workers and its loop may ask at once
            self._seen += 1
            seen = self._seen
        if self.every is not None and seen % self.every != 0:
            return None
        if self.times is not None and seen > self.times:
            return None
        if self.chance is not None and random.random() >= self.chance:  # noqa: S311 - a test double, not crypto
            return None
        return self.response

    def describe(self) -> str:
        """`/hooks/* → 500 every 3rd` for the start banner."""
        parts = [f"{self.glob} → {self.response.status}"]
        if self.every is not None:
            parts.append(f"every {_ordinal(self.every)}")
        if self.times is not None:
            parts.append(f"the first {self.times}")
        if self.chance is not None:
            parts.append(f"{self.chance:.0%} of the time")
        if self.response.delay:
            parts.append(f"after {self.response.delay:g} s")
        if self.response.body is not None:
            parts.append(f"{len(self.response.body)}-byte body")
        return " ".join(parts)


def _ordinal(n: int) -> str:
    return {1: "one", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


RULE_KEYS = ("delay", "body", "header", "every", "times", "chance")
TABLE_KEYS = ("path", "status", "delay", "body", "body_file", "headers", "every", "times", "chance")


def parse_respond(spec: str) -> ResponseRule:
    """`GLOB=STATUS[,delay=S][,header=NAME:VALUE][,every=N|times=N|chance=P][,body=TEXT|@FILE]`;
    `body=` takes the rest of the text, commas included."""
    head, _, rest = spec.partition(",")
    glob, eq, status_text = head.rpartition("=")
    if not eq or not glob:
        raise UsageError(f"--respond {spec!r}: write it as GLOB=STATUS[,delay=2][,every=3][,body=TEXT]",
                         "example: --respond '/hooks/*=500,every=3'")
    options: dict[str, Any] = {"status": _status(status_text, spec), "headers": []}
    while rest:
        item, _, remainder = rest.partition(",")
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key == "body":
            options["body"] = rest.partition("=")[2]
            break
        if not eq or key not in RULE_KEYS:
            raise UsageError(f"--respond {spec!r}: unknown option {key!r}{did_you_mean(key, RULE_KEYS)}",
                             "options: " + ", ".join(RULE_KEYS))
        if key == "header":
            options["headers"].append(_header(value, spec))
        else:
            options[key] = value
        rest = remainder
    return _rule(glob, options, f"--respond {spec!r}")


def rules_from_config(tables: Any) -> list[ResponseRule]:
    """`[[responses]]` tables: path, status, delay, body or body_file, headers, every, times, chance."""
    if tables is None:
        return []
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UsageError("responses in the configuration must be [[responses]] tables")
    rules = []
    for number, table in enumerate(tables, 1):
        where = f"[[responses]] #{number}"
        for key in table:
            if key not in TABLE_KEYS:
                raise UsageError(f"{where}: unknown key {key!r}{did_you_mean(key, TABLE_KEYS)}", "keys: " + ", ".join(TABLE_KEYS))
        if "path" not in table or "status" not in table:
            raise UsageError(f"{where} needs a path and a status")
        options: dict[str, Any] = {k: table[k] for k in ("delay", "every", "times", "chance") if k in table}
        options["status"] = _status(str(table["status"]), where)
        options["headers"] = [(str(k), str(v)) for k, v in (table.get("headers") or {}).items()]
        if "body_file" in table:
            options["body"] = "@" + str(table["body_file"])
        elif "body" in table:
            options["body"] = str(table["body"])
        rules.append(_rule(str(table["path"]), options, where))
    return rules


def parse_header(text: str) -> tuple[str, str]:
    """`'X-Debug: 1'` -> ("X-Debug", "1")."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c in name for c in " \t\r\n"):
        raise UsageError(f"bad header {text!r}", "write it as 'Name: value'")
    if any(c in value for c in "\r\n"):
        raise UsageError(f"header {name.strip()!r} contains a line break")
    return name.strip(), value.strip()


def read_body(text: str, where: str) -> bytes:
    """Response body text, or the bytes of the file after `@`."""
    if not text.startswith("@"):
        return text.encode("utf-8")
    try:
        return Path(text[1:]).read_bytes()
    except OSError as exc:
        raise UsageError(f"{where}: cannot read body file {text[1:]}: {exc.strerror}") from None


def _rule(glob: str, options: dict[str, Any], where: str) -> ResponseRule:
    delay = _number(options.get("delay", 0), "delay", where, float)
    if delay < 0:
        raise UsageError(f"{where}: delay cannot be negative")
    every = _number(options["every"], "every", where, int) if "every" in options else None
    times = _number(options["times"], "times", where, int) if "times" in options else None
    chance = _number(options["chance"], "chance", where, float) if "chance" in options else None
    if sum(x is not None for x in (every, times, chance)) > 1:
        raise UsageError(f"{where}: choose one of every, times and chance")
    if (every is not None and every < 1) or (times is not None and times < 1):
        raise UsageError(f"{where}: every and times count requests: 1 or more")
    if chance is not None and not 0 < chance <= 1:
        raise UsageError(f"{where}: chance is a probability: above 0, at most 1 (0.2 is one in five)")
    body = read_body(options["body"], where) if "body" in options else None
    response = MockResponse(status=options["status"], headers=options["headers"], body=body, delay=delay)
    return ResponseRule(glob if glob.startswith(("/", "*")) else "/" + glob, response, every, times, chance)


def _status(text: str, where: str) -> int:
    try:
        status = int(text.strip())
    except ValueError:
        raise UsageError(f"{where}: {text.strip()!r} is not an HTTP status") from None
    if not 100 <= status <= 599:
        raise UsageError(f"{where}: {status} is not an HTTP status (100-599)")
    return status


def _header(text: str, where: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise UsageError(f"{where}: header {text!r} must be NAME:VALUE")
    return name.strip(), value.strip()


def _number(value: Any, name: str, where: str, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {name} must be a number, got {value!r}") from None
