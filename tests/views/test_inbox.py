"""The list model both UIs render: the first numbers, the scan, arrivals in pages, a page of
rows, all leaving out what is in the trash; and the trash: hidden at once, restorable, gone
for good after the window, and a delete that fails (a full disk) is one line with the
deliveries back."""

from __future__ import annotations

from hookinspect import views
from hookinspect.formats.filters import DeliveryFilter, parse_filter
from hookinspect.views.inbox import Inbox, Trash, acted_on
from hookinspect.workspace import Workspace
from tests.factories import await_until, fill_disk, make_delivery, seed


def seed_numbered(path, count):
    seed(path, *(make_delivery(path=f"/{n}") for n in range(count)))


async def test_deleted_deliveries_are_hidden_restorable_and_then_gone(store_path):
    seed_numbered(store_path, 3)
    with Workspace(store_path) as workspace:
        trash = Trash(workspace, seconds=0.05)
        first = trash.put([1])
        trash.put([2])
        assert trash.hidden() == {1, 2}
        assert trash.undo() == [2]  # the newest, without a token
        assert trash.undo(first) == [1] and trash.undo(first) is None and not trash
        trash.put([3])
        await await_until(lambda: workspace.store.count() == 2, what="#3 deleted for good")
        assert sorted(workspace.store.seqs()) == [1, 2]


async def test_emptying_deletes_now(store_path):
    seed_numbered(store_path, 2)
    with Workspace(store_path) as workspace:
        trash = Trash(workspace, seconds=60)
        trash.put([1, 2])
        await trash.empty()
        assert workspace.store.count() == 0 and trash.hidden() == set()


async def test_a_delete_that_fails_is_one_line_and_the_deliveries_come_back(small_filesystem):
    store_path = small_filesystem / "store.db"
    with Workspace(store_path, create=True) as workspace:
        seed_numbered(store_path, 2)
        said: list[str] = []
        restored: list[list[int]] = []
        trash = Trash(workspace, seconds=0.05, on_error=said.append, on_restored=restored.append)
        filler = fill_disk(small_filesystem)
        trash.put([2])
        await await_until(lambda: said, what="the failure said")
        assert len(said) == 1 and said[0].startswith("deleting #2 failed: ") and said[0].endswith("they stay in the store")
        assert restored == [[2]] and workspace.store.count() == 2
        filler.unlink()
        trash.put([2])
        await await_until(lambda: workspace.store.count() == 1, what="#2 deleted once there is room")


async def test_the_first_numbers_the_scan_and_arrivals_leave_the_trash_out(store_path, monkeypatch):
    monkeypatch.setattr(views.inbox, "FIRST_NUMBERS", 10)  # a small store that still needs a scan
    monkeypatch.setattr(views.inbox, "ARRIVALS_PAGE", 4)  # arrivals that take several pages
    seed_numbered(store_path, 25)
    with Workspace(store_path) as workspace:
        inbox = Inbox(workspace, Trash(workspace))
        inbox.trash.put([25, 3])
        start = inbox.start(workspace.store, DeliveryFilter(), rows=2)
        assert start.newest == 25 and start.total == 25 and not start.complete
        assert start.numbers == list(range(24, 15, -1)) and sorted(start.rows) == [23, 24]
        older = [seq for chunk in inbox.scan(DeliveryFilter(), start.scan_from, cancelled=lambda: False) for seq in chunk]
        assert older == [n for n in range(15, 0, -1) if n != 3]
        assert list(inbox.scan(DeliveryFilter(), start.scan_from, cancelled=lambda: True)) == []
        seed_numbered(store_path, 9)
        arrivals = inbox.arrivals(workspace.store, parse_filter("path:/1*"), after=25)
        assert arrivals.newest == 34 and arrivals.total == 34
        assert [row.seq for row in arrivals.rows] == [27]  # /1 of the nine new ones, read over three pages
        assert [row.seq for row in inbox.arrivals(workspace.store, DeliveryFilter(), after=25).rows] == list(range(26, 35))


async def test_a_filter_that_reads_bodies_lists_nothing_at_once_and_its_scan_finds_it(store_path):
    seed(store_path, make_delivery(b'{"amount":5}'), make_delivery(b'{"amount":5000}'))
    with Workspace(store_path) as workspace:
        inbox = Inbox(workspace, Trash(workspace))
        flt = parse_filter("$.amount>1000")
        start = inbox.start(workspace.store, flt)
        assert start.numbers == [] and start.scan_from == 2
        assert [s for chunk in inbox.scan(flt, start.scan_from, cancelled=lambda: False) for s in chunk] == [2]


async def test_pages_newest_first_older_and_newer_with_the_total_on_the_first(store_path):
    seed_numbered(store_path, 7)
    with Workspace(store_path) as workspace:
        inbox = Inbox(workspace, Trash(workspace))
        inbox.trash.put([6])
        first = inbox.page(workspace.store, DeliveryFilter(), limit=3)
        assert [r.seq for r in first.rows] == [7, 5] and first.more and first.total == 7
        older = inbox.page(workspace.store, DeliveryFilter(), before=5, limit=3)
        assert [r.seq for r in older.rows] == [4, 3, 2] and older.more and older.total is None
        newer = inbox.page(workspace.store, DeliveryFilter(), after=2, limit=2)
        assert [r.seq for r in newer.rows] == [4, 3] and newer.more


def test_an_action_works_on_the_marked_ones_or_else_the_current_one():
    assert acted_on({5, 2}, 9) == [2, 5]
    assert acted_on(set(), 9) == [9]
    assert acted_on(set(), None) == []
