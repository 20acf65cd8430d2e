"""What a record middleware records and where it writes: by code (the middleware's keyword
arguments) or by the environment (`HOOKINSPECT_RECORD`); off unless one of them says where.

    HOOKINSPECT_RECORD=/var/lib/app/webhooks.db                 a store file (listen's format)
    HOOKINSPECT_RECORD=https://relay.example.com/AbC…           a relay channel
    HOOKINSPECT_RECORD="store=/var/lib/app/webhooks.db;paths=/webhooks/*,/hooks/*;methods=POST;providers=stripe,github;max_body=1MiB"

A request is recorded when its method is among `methods` (any when none are given), its path
matches one of `paths` (globs; any when none are given), and, when no paths are given, a
provider is detected in it as `listen` detects them (among `providers` when given).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from hookinspect.config import parse_size
from hookinspect.errors import UsageError
from hookinspect.formats.redaction import Redaction

ENV = "HOOKINSPECT_RECORD"
DEFAULT_MAX_BODY = 1024 * 1024  # request bodies recorded whole up to this; the request is never cut
DEFAULT_MAX_ANSWER = 64 * 1024  # the app's answer body kept up to this
DEFAULT_QUEUE = 1000  # recordings waiting for the writer at most; past it they are dropped (counted)


@dataclass(frozen=True)
class RecordSettings:
    store: Path | None = None
    relay: str | None = None  # a channel URL: recordings are posted to it as their requests
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    max_body: int = DEFAULT_MAX_BODY
    max_answer: int = DEFAULT_MAX_ANSWER
    queue: int = DEFAULT_QUEUE
    redaction: Redaction = field(default_factory=lambda: Redaction(keep_signatures=True))

    @property
    def is_on(self) -> bool:
        return self.store is not None or self.relay is not None

    def selects(self, method: str, path: str) -> bool:
        """What can be told before the app runs: the method and the path."""
        if self.methods and method.upper() not in self.methods:
            return False
        return not self.paths or self._path_pattern.match(path) is not None

    @cached_property
    def _path_pattern(self) -> re.Pattern[str]:
        # Every request passes here, chosen or not: one compiled match, not one per pattern.
        return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in self.paths))

    @property
    def needs_provider(self) -> bool:
        """Whether a request is recorded only when a provider is detected in it."""
        return not self.paths or bool(self.providers)

    def wants_provider(self, provider: str | None) -> bool:
        if not self.needs_provider:
            return True
        return provider is not None and (not self.providers or provider in self.providers)


def record_settings(*, store: str | os.PathLike[str] | None = None, record_to: str | None = None,
                    paths: tuple[str, ...] | list[str] = (), methods: tuple[str, ...] | list[str] = (),
                    providers: tuple[str, ...] | list[str] = (), max_body: int | str | None = None,
                    queue: int = DEFAULT_QUEUE, redaction: Redaction | None = None,
                    environ: dict[str, str] | None = None) -> RecordSettings:
    """Settings from the middleware's arguments, else from HOOKINSPECT_RECORD; off when neither
    names a store or a relay. A wrong one is a UsageError (the app should not start with it)."""
    given: dict[str, str] = {}
    if store is None and record_to is None:
        given = parse_record_env((environ if environ is not None else os.environ).get(ENV, ""))
    store = store if store is not None else given.get("store")
    record_to = record_to if record_to is not None else given.get("relay")
    if store is not None and record_to is not None:
        raise UsageError("record: give a store or a relay channel, not both")
    if queue < 1:
        raise UsageError(f"record: queue must be at least 1 (recordings waiting for the writer), got {queue}")
    if record_to is not None and not record_to.startswith(("http://", "https://")):
        raise UsageError(f"record: {record_to!r} is not a relay channel URL (https://relay.example.com/<channel>)")
    size = max_body if max_body is not None else given.get("max_body")
    return RecordSettings(
        store=Path(store) if store is not None else None, relay=record_to,
        paths=tuple(paths) or _listed(given.get("paths")),
        methods=tuple(m.upper() for m in (tuple(methods) or _listed(given.get("methods")))),
        providers=tuple(p.lower() for p in (tuple(providers) or _listed(given.get("providers")))),
        max_body=parse_size(str(size)) if size is not None else DEFAULT_MAX_BODY, queue=queue,
        redaction=redaction or _file_redaction())


def parse_record_env(value: str) -> dict[str, str]:
    """HOOKINSPECT_RECORD: a store path, a relay URL, or `key=value;…` (store, relay, paths, methods,
    providers, max_body)."""
    value = value.strip()
    if not value:
        return {}
    if "=" not in value.split(";")[0] or value.startswith(("http://", "https://", "/", ".")):
        return {"relay" if value.startswith(("http://", "https://")) else "store": value}
    found: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, item = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("store", "relay", "paths", "methods", "providers", "max_body"):
            raise UsageError(f"{ENV}: {part.strip()!r} is not one of store=, relay=, paths=, methods=, providers=, "
                             "max_body=")
        found[key] = item.strip()
    return found


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _file_redaction() -> Redaction:
    """The `[redact]` rules of hookinspect.toml, as export applies them, keeping signature headers."""
    from dataclasses import replace

    from hookinspect.config import Settings
    return replace(Redaction.from_config(Settings(environ={}).table("redact")), keep_signatures=True)
