"""Bundled sample deliveries per provider, and the request that sends one, signed."""

from __future__ import annotations

import difflib
import json
import secrets as random
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hookinspect.body import NOT_JSON, parse_json
from hookinspect.errors import UsageError
from hookinspect.formats.targets import target_url
from hookinspect.model import Headers, SentRequest
from hookinspect.signing.base import SignedMessage
from hookinspect.signing.registry import provider_named, signed

DATA = "sample_data"


@dataclass(frozen=True)
class Sample:
    name: str
    provider: str | None
    path: str
    file: str
    content_type: str
    headers: tuple[tuple[str, str], ...]
    description: str
    source: str  # the provider's documentation of this event, whose shape the sample follows
    fresh: tuple[str, ...] = ()  # headers given a new id per send ("svix-id:msg_": that prefix, else a UUID)

    @property
    def event_type(self) -> str:
        return self.name.split("/", 1)[1]

    def body(self) -> bytes:
        return resources.files("hookinspect").joinpath(DATA, self.file).read_bytes()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "provider": self.provider, "event_type": self.event_type,
                "path": self.path, "content_type": self.content_type, "description": self.description,
                "source": self.source}


def list_samples() -> list[Sample]:
    index = json.loads(resources.files("hookinspect").joinpath(DATA, "index.json").read_text())
    return [Sample(e["name"], e["provider"], e["path"], e["file"], e["content_type"],
                   tuple((k, v) for k, v in e["headers"]), e["description"], e["source"], tuple(e.get("fresh", ())))
            for e in index]


def find_sample(name: str) -> Sample:
    samples = {s.name: s for s in list_samples()}
    if name in samples:
        return samples[name]
    close = difflib.get_close_matches(name, samples, n=3)
    raise UsageError(f"no sample {name!r}", ("did you mean " + ", ".join(close)) if close else "`hookinspect samples` lists them")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(body: bytes, content_type: str, overrides: list[str]) -> bytes:
    """`field=value` edits: dotted paths into a JSON body (values are JSON when they parse), or form fields."""
    if not overrides:
        return body
    if "x-www-form-urlencoded" in content_type:
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        for item in overrides:
            key, eq, value = item.partition("=")
            if not eq:
                raise UsageError(f"--set {item!r}: write it as field=value")
            fields[key] = value
        return urlencode(fields).encode()
    doc = parse_json(body)
    if doc is NOT_JSON:
        raise UsageError("--set works on JSON and form samples")
    for item in overrides:
        path, eq, value = item.partition("=")
        if not eq or not path:
            raise UsageError(f"--set {item!r}: write it as data.object.amount=2500")
        node = doc
        steps = path.split(".")
        for step in steps[:-1]:
            if isinstance(node, list) and step.isdigit():
                node = node[int(step)]
            elif isinstance(node, dict):
                node = node.setdefault(step, {})
            else:
                raise UsageError(f"--set {path}: {step!r} is not an object")
        if isinstance(node, list) and steps[-1].isdigit():
            node[int(steps[-1])] = _parse_value(value)
        elif isinstance(node, dict):
            node[steps[-1]] = _parse_value(value)
        else:
            raise UsageError(f"--set {path}: cannot set a field there")
    return json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n"


def build_sample_request(sample: Sample, to: str, secret: str | None, overrides: list[str] = (),  # type: ignore[assignment]
                         now: float | None = None) -> SentRequest:
    """The request a real sender would make: its headers, a fresh id, and a fresh signature."""
    now = time.time() if now is None else now
    body = apply_overrides(sample.body(), sample.content_type, list(overrides))
    url = target_url(to, sample.path, "")
    headers = Headers([("Host", url.split("/")[2]), ("Content-Type", sample.content_type), *sample.headers])
    for fresh in sample.fresh:  # a sender's delivery id is new on every delivery
        name, colon, prefix = fresh.partition(":")
        headers = headers.with_set(name, prefix + random.token_hex(12) if colon else str(uuid.uuid4()))
    headers = headers.with_set("Content-Length", str(len(body)))
    if sample.provider is not None and secret:
        message = signed(provider_named(sample.provider), SignedMessage("POST", url, headers, body), secret, now)
        headers, body = message.headers, message.body
    return SentRequest(method="POST", url=url, headers=headers, body=body)
