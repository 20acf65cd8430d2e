"""Snapshots of the main screens (pytest-textual-snapshot), with fixed deliveries and times."""

import time

import pytest

from hookinspect.store.sqlite import Store
from hookinspect.tui.app import HookinspectApp
from hookinspect.workspace import Workspace
from tests.factories import make_attempt, make_delivery

FIXED_US = 1_764_345_600_000_000  # 2025-11-28 16:00:00 UTC: a past day, so rows show the full date


@pytest.fixture
def snapshot_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    with Store("store.db") as store:
        for i, (body, path, event) in enumerate([
            (b'{"type":"invoice.paid","amount":1200}', "/stripe/webhook", "invoice.paid"),
            (b'{"type":"invoice.paid","amount":2500}', "/stripe/webhook", "invoice.paid"),
            (b"\x1b[31mhostile [bold]markup[/bold]", "/evil", None),
        ]):
            delivery = make_delivery(body, path=path, received_us=FIXED_US + i * 1_000_000, id=f"{i:032x}",
                                     content_type="application/json" if event else "text/plain")
            delivery.provider, delivery.event_type = ("stripe", event) if event else (None, None)
            store.insert_delivery(delivery)
        attempt = make_attempt(1, 200)
        attempt.started_us, attempt.id, attempt.latency_ms = FIXED_US + 5_000_000, "a" * 32, 12.0
        store.add_attempt(attempt)
    with Workspace("store.db") as workspace:
        yield workspace


async def settled(pilot):
    """Details and diffs are computed in workers: shoot once they are on screen."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def keys_then_settle(*keys):
    async def run_before(pilot):
        await settled(pilot)
        await pilot.press(*keys)
        await settled(pilot)
    return run_before


SIZES = [pytest.param((140, 45), id="140x45"), pytest.param((80, 24), id="80x24")]


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, snapshot_store, size):
    assert snap_compare(HookinspectApp(snapshot_store), terminal_size=size, run_before=keys_then_settle("j", "space", "j"))


@pytest.mark.parametrize("size", SIZES)
def test_diff_tab(snap_compare, snapshot_store, size):
    assert snap_compare(HookinspectApp(snapshot_store), terminal_size=size, run_before=keys_then_settle("j", "d"))


@pytest.mark.parametrize("size", SIZES)
def test_attempts_tab(snap_compare, snapshot_store, size):
    assert snap_compare(HookinspectApp(snapshot_store), terminal_size=size, run_before=keys_then_settle("j", "j", "2"))


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, snapshot_store, size):
    assert snap_compare(HookinspectApp(snapshot_store), terminal_size=size, run_before=keys_then_settle("question_mark"))


@pytest.mark.parametrize("size", SIZES)
def test_delete_asks_first(snap_compare, snapshot_store, size):
    assert snap_compare(HookinspectApp(snapshot_store), terminal_size=size, run_before=keys_then_settle("delete"))
