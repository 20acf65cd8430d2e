"""The trash both UIs use: hidden at once, restorable, gone for good after the window, and a
delete that fails (a full disk) is one line with the deliveries back."""

from __future__ import annotations

from hookinspect.views.inbox import Trash
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
