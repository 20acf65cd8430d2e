"""Routing rules: which targets a delivery is forwarded to.

In hookinspect.toml (or [tool.hookinspect] in pyproject.toml):

    [[route]]
    path = "/github/*"                      # path glob
    to = "http://localhost:4000/github"

    [[route]]
    header = "Stripe-Signature"             # header present; or "X-GitHub-Event: push*" (value glob)
    json = "$.type~^invoice\\\\."           # a JSON test, as in the filter language
    to = ["http://localhost:3000/stripe", "http://localhost:3001/audit"]

Every matching route contributes its targets (several at once); when none matches, the
default target (`--forward-to`) is used.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from hookinspect.errors import UsageError
from hookinspect.formats.filters import JsonTest, parse_filter
from hookinspect.formats.targets import validate_target
from hookinspect.model import Delivery


@dataclass(frozen=True)
class Route:
    to: tuple[str, ...]
    path_glob: str | None = None
    header_name: str | None = None
    header_glob: str | None = None
    json_tests: tuple[JsonTest, ...] = field(default_factory=tuple)

    def matches(self, delivery: Delivery) -> bool:
        if self.path_glob and not fnmatch.fnmatchcase(delivery.path, self.path_glob):
            return False
        if self.header_name:
            values = delivery.headers.get_all(self.header_name)
            if not values:
                return False
            if self.header_glob and not any(fnmatch.fnmatchcase(v, self.header_glob) for v in values):
                return False
        if self.json_tests:
            document = delivery.json()
            if not all(test.matches(document) for test in self.json_tests):
                return False
        return True


def parse_routes(entries: Any) -> list[Route]:
    """Routes from the config file's [[route]] tables; a malformed one is a UsageError."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise UsageError("config: `route` must be a list of [[route]] tables")
    routes = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or "to" not in entry:
            raise UsageError(f"config: route {number} needs `to = \"http://...\"`")
        targets = entry["to"] if isinstance(entry["to"], list) else [entry["to"]]
        header_name = header_glob = None
        if entry.get("header"):
            name, colon, value = str(entry["header"]).partition(":")
            header_name, header_glob = name.strip(), (value.strip() if colon else None)
        json_tests = tuple(parse_filter(str(entry["json"])).json_tests) if entry.get("json") else ()
        if entry.get("json") and not json_tests:
            raise UsageError(f"config: route {number}: `json` must be a test such as \"$.type=invoice.paid\"")
        routes.append(Route(tuple(validate_target(str(t)) for t in targets), entry.get("path"),
                            header_name, header_glob, json_tests))
    return routes


def targets_for(delivery: Delivery, routes: list[Route], default: list[str]) -> list[str]:
    """Targets of every matching route, in order, without repeats; else the default."""
    chosen: list[str] = []
    for route in routes:
        if route.matches(delivery):
            chosen += [t for t in route.to if t not in chosen]
    return chosen or list(default)
