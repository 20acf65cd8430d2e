"""Replay fixture records against a backend (a URL, or an ASGI/WSGI app in-process) and judge the answers."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import socket
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hookinspect.body import xml_safe
from hookinspect.errors import NetworkError, UsageError
from hookinspect.formats.diff import Change
from hookinspect.formats.fixtures import Expectation, FixtureRecord, json_value_at
from hookinspect.formats.targets import validate_target
from hookinspect.model import Attempt, Delivery, Headers, Response
from hookinspect.send.forward import DEFAULT_TIMEOUT, Forwarder, Resigner, build_request

APP_BASE_URL = "http://testserver/"


@dataclass
class CheckResult:
    record: FixtureRecord
    attempt: Attempt
    failures: list[Change] = field(default_factory=list)  # expected (old) vs got (new), by path

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.record.name, "file": self.record.source, "record": self.record.record_id,
            "passed": self.passed, "outcome": self.attempt.outcome, "latency_ms": self.attempt.latency_ms,
            "failures": [c.to_dict() for c in self.failures],
        }


def status_matches(expected: int | str | list[int], status: int) -> bool:
    if isinstance(expected, int):
        return status == expected
    if isinstance(expected, list):
        return status in expected
    return str(status)[0] == expected[0]


def evaluate(expect: Expectation, attempt: Attempt) -> list[Change]:
    """Every way the answer misses its expectation (empty: it passed)."""
    if attempt.response is None:
        return [Change("response", "changed", "a response", attempt.error_message or attempt.error_kind)]
    failures: list[Change] = []
    status = attempt.response.status
    if not status_matches(expect.status if expect.status is not None else "2xx", status):
        failures.append(Change("status", "changed", expect.status if expect.status is not None else "2xx", status))
    if expect.json:
        doc = attempt.response.json()
        for path, wanted in expect.json.items():
            found, got = json_value_at(doc, path)
            if not found:
                failures.append(Change(path, "removed", wanted, None))
            elif got != wanted:
                failures.append(Change(path, "changed", wanted, got))
    if expect.max_ms is not None and attempt.latency_ms is not None and attempt.latency_ms > expect.max_ms:
        failures.append(Change("latency_ms", "changed", f"<= {expect.max_ms}", round(attempt.latency_ms, 1)))
    return failures


def load_app(spec: str) -> Any:
    """`package.module:attribute` -> the application object (the current directory is importable)."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"--app {spec!r}: write it as module:attribute, e.g. shop.main:app")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app: cannot import {module_name}: {exc}") from None
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise UsageError(f"--app: {module_name} has no attribute {attribute!r}") from None
    if not callable(app):
        raise UsageError(f"--app: {spec} is not an application")
    return app


def is_asgi(app: Any) -> bool:
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", app)  # noqa: B004
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app)


class AppSender:
    """Sends into an ASGI or WSGI application through httpx's transports, no server needed."""

    def __init__(self, app: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        # Imported here: httpx loads its own command line (click, rich) when click is installed,
        # and only `check --app` needs it.
        import httpx

        self._httpx = httpx
        self.asgi = is_asgi(app)
        if self.asgi:
            self._async = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=timeout)
        else:
            self._sync = httpx.Client(transport=httpx.WSGITransport(app=app), timeout=timeout)

    async def aclose(self) -> None:
        if self.asgi:
            await self._async.aclose()
        else:
            self._sync.close()

    async def send(self, delivery: Delivery, *, kind: str, resign: Resigner | None) -> Attempt:
        request = build_request(delivery, APP_BASE_URL, forwarded=False)
        if resign is not None:
            request = resign(request)
        attempt = Attempt(delivery_seq=delivery.seq or 0, kind=kind, target_url=APP_BASE_URL, request=request)
        outgoing = self._httpx.Request(request.method, request.url, headers=request.headers.raw(), content=request.body)
        started = time.perf_counter()
        try:
            if self.asgi:
                response = await self._async.send(outgoing)
            else:
                response = await asyncio.to_thread(self._sync.send, outgoing)
        except Exception as exc:  # noqa: BLE001 - the app's own exception is the check's result, not ours
            attempt.error_kind, attempt.error_message = "other", f"the app raised {exc.__class__.__name__}: {exc}"
        else:
            attempt.response = Response(status=response.status_code, reason=response.reason_phrase,
                                        headers=Headers.from_raw(response.headers.raw), body=response.content)
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        return attempt


def ensure_reachable(target: str, timeout: float = 3.0) -> None:
    """Fail fast, once, when nothing listens at the target (rather than one timeout per fixture)."""
    parts = urlsplit(target)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
        raise NetworkError(f"target {target} is not reachable ({reason}); nothing was checked",
                           "start the backend first, or use --app module:app") from None


async def run_checks(records: list[FixtureRecord], *, target: str | None = None, app: Any = None,
                     concurrency: int = 4, timeout: float = DEFAULT_TIMEOUT,
                     resigner_for: Callable[[Delivery], Resigner | None] | None = None,
                     on_result: Callable[[CheckResult], None] | None = None,
                     verify_tls: bool = True) -> list[CheckResult]:
    """Send every record (re-signed when a secret is known) and evaluate its expectation."""
    if (target is None) == (app is None):
        raise UsageError("check needs exactly one of --target URL and --app module:app")
    if target is not None:
        target = validate_target(target)
        await asyncio.to_thread(ensure_reachable, target)
    semaphore = asyncio.Semaphore(max(1, concurrency))
    sender: Forwarder | AppSender = Forwarder(timeout=timeout, verify_tls=verify_tls) if target is not None else AppSender(app, timeout)

    async def one(record: FixtureRecord) -> CheckResult:
        resign = resigner_for(record.delivery) if resigner_for is not None else None
        async with semaphore:
            if isinstance(sender, Forwarder):
                attempt = await sender.send(record.delivery, target, kind="check", resign=resign)  # type: ignore[arg-type]
            else:
                attempt = await sender.send(record.delivery, kind="check", resign=resign)
        result = CheckResult(record, attempt, evaluate(record.expect, attempt))
        if on_result is not None:
            on_result(result)
        return result

    try:
        return list(await asyncio.gather(*(one(r) for r in records)))
    finally:
        await sender.aclose()


def junit_xml(results: list[CheckResult], suite: str = "hookinspect") -> bytes:
    """A JUnit XML report: one testcase per fixture record, one suite per file."""
    root = ET.Element("testsuites", name=suite)
    by_file: dict[str, list[CheckResult]] = {}
    for result in results:
        by_file.setdefault(result.record.source or "fixtures", []).append(result)
    for source, group in by_file.items():
        failures = sum(1 for r in group if not r.passed)
        total_ms = sum(r.attempt.latency_ms or 0 for r in group)
        suite_el = ET.SubElement(root, "testsuite", name=xml_safe(Path(source).name), tests=str(len(group)),
                                 failures=str(failures), errors="0", time=f"{total_ms / 1000:.3f}")
        for result in group:
            case = ET.SubElement(suite_el, "testcase", classname=xml_safe(Path(source).stem), name=xml_safe(result.record.name),
                                 time=f"{(result.attempt.latency_ms or 0) / 1000:.3f}")
            if not result.passed:
                message = "; ".join(f"{c.path}: expected {c.old!r}, got {c.new!r}" for c in result.failures)
                failure = ET.SubElement(case, "failure", message=xml_safe(message), type="ExpectationFailed")
                body = result.attempt.response.text()[:2000] if result.attempt.response is not None else ""
                failure.text = xml_safe(f"{message}\n\nresponse body:\n{body}" if body else message)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
