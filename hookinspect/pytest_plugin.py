"""pytest plugin (entry point `pytest11`): webhook fixtures for test suites.

- `webhook_receiver`: a real capture receiver on a free loopback port, for testing code
  that *sends* webhooks: `.url`, `.wait_for(count=1, path="/hook", timeout=5)`, `.deliveries`.
- `webhook_fixtures`: a loader for fixture files: `webhook_fixtures("tests/webhooks/shop.json")`.
- `replay(record, target_or_app, secrets=...)` and `assert_expectation(record, answer)`,
  importable from this module, also offered as fixtures `webhook_replay` and `webhook_expect`.

Works from plain and from pytest-asyncio tests: the receiver runs its own event loop in a
thread, and replay runs in a thread of its own when the caller's loop is busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import fnmatch
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hookinspect.formats.diff import Change
from hookinspect.formats.fixtures import FixtureRecord, load_fixture
from hookinspect.formats.targets import validate_target
from hookinspect.intake.receiver import ReceiverSettings, create_app, start_server
from hookinspect.model import Attempt, Delivery, Response
from hookinspect.send.check import AppSender, evaluate
from hookinspect.send.forward import Forwarder
from hookinspect.signing.base import Verdict
from hookinspect.signing.registry import Secrets, check_delivery, resigner_for
from hookinspect.workspace import ChangeKind, StoreChange, Workspace

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class CapturedDelivery(Delivery):
    """A delivery the receiver captured, with a signature check for assertions."""

    def verify(self, provider: str, secret: str, now: float | None = None, url: str | None = None) -> Verdict | None:
        """The signature Verdict for `provider` with `secret`: `delivery.verify("github", s).status == "valid"`."""
        secrets = Secrets()
        secrets.add(provider, secret)
        return check_delivery(self, secrets, now, url, provider=provider).verdict


def _captured(delivery: Delivery) -> CapturedDelivery:
    return CapturedDelivery(**{f.name: getattr(delivery, f.name) for f in dataclasses.fields(delivery)})


class WebhookReceiver:
    """A capture receiver in a background thread; every request is stored before it is answered."""

    def __init__(self, store_path: Path, settings: ReceiverSettings | None = None) -> None:
        self.store_path = store_path
        self.settings = settings or ReceiverSettings()
        self.url = ""
        self.workspace = Workspace(store_path, create=True)
        self._arrived = threading.Condition()
        self.workspace.changes.subscribe(self._on_change)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="hookinspect-test-receiver", daemon=True)
        self._thread.start()
        self._started.wait(15)
        if self._error is not None:
            raise self._error

    def _on_change(self, _change: StoreChange) -> None:
        with self._arrived:
            self._arrived.notify_all()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner, urls = self._loop.run_until_complete(
                start_server(create_app(self.workspace, self.settings), "127.0.0.1", 0))
            self.url = urls[0]
        except BaseException as exc:  # handed to the test's thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
        self.workspace.close()

    @property
    def deliveries(self) -> list[CapturedDelivery]:
        """Everything received so far, oldest first."""
        store = self.workspace.store
        return [_captured(store.get(seq)) for seq in store.seqs()]

    def wait_for(self, count: int = 1, path: str | None = None, timeout: float = 5.0) -> list[CapturedDelivery]:
        """Wait until `count` deliveries (to `path`, a glob, if given) arrived; return them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [d for d in self.deliveries if path is None or fnmatch.fnmatchcase(d.path, path)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ", ".join(f"{d.method} {d.target}" for d in self.deliveries) or "nothing"
                    raise AssertionError(f"expected {count} deliveries{f' to {path}' if path else ''} within {timeout} s, "
                                         f"got {len(found)}; received: {seen}")
                self._arrived.wait(left)  # woken by every delivery the receiver announces

    def clear(self) -> None:
        self.workspace.clear()


def replay(record: FixtureRecord | Delivery, target_or_app: Any, secrets: dict[str, str] | None = None,
           timeout: float = 30.0) -> Attempt:
    """Send one fixture record or delivery to a URL or an ASGI/WSGI app; the Attempt has `.response`."""
    delivery = record.delivery if isinstance(record, FixtureRecord) else record
    known = Secrets()
    for provider, secret in (secrets or {}).items():
        known.add(provider, secret)
    resign = resigner_for(delivery, known) if known else None

    async def go() -> Attempt:
        if isinstance(target_or_app, str):
            async with Forwarder(timeout=timeout) as forwarder:
                return await forwarder.send(delivery, validate_target(target_or_app), kind="check", resign=resign)
        sender = AppSender(target_or_app, timeout)
        try:
            return await sender.send(delivery, kind="check", resign=resign)
        finally:
            await sender.aclose()

    return _run(go())


def assert_expectation(record: FixtureRecord, answer: Attempt | Response) -> None:
    """AssertionError with a readable list of what differs from the record's expectation."""
    if isinstance(answer, Response):
        attempt = Attempt(delivery_seq=0, kind="check", target_url="", request=None, response=answer)  # type: ignore[arg-type]
    else:
        attempt = answer
    failures = evaluate(record.expect, attempt)
    if failures:
        lines = [f"{record.name}: the answer does not meet its expectation"]
        lines += [f"  {_describe(c)}" for c in failures]
        if attempt.response is not None and attempt.response.body:
            lines.append(f"  response body: {attempt.response.text()[:500]}")
        raise AssertionError("\n".join(lines))


def _describe(change: Change) -> str:
    if change.kind == ChangeKind.REMOVED:
        return f"{change.path}: expected {change.old!r}, missing"
    return f"{change.path}: expected {change.old!r}, got {change.new!r}"


@pytest.fixture
def webhook_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookReceiver]:
    """A real receiver on 127.0.0.1 with a fresh store; stopped after the test."""
    receiver = WebhookReceiver(tmp_path_factory.mktemp("webhooks") / "store.db")
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def webhook_fixtures():  # noqa: ANN201 - returns the loader
    """`webhook_fixtures(path, only=["invoice.*"])` -> the records of a fixture file."""

    def load(path: str | Path, only: list[str] | None = None) -> list[FixtureRecord]:
        return load_fixture(path, only)

    return load


@pytest.fixture
def webhook_replay():  # noqa: ANN201
    return replay


@pytest.fixture
def webhook_expect():  # noqa: ANN201
    return assert_expectation
