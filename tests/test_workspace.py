"""The workspace: its one writer and the one way changes reach a shell."""

import subprocess
import sys
import threading

from hookinspect.workspace import ChangeKind, StoreChange, Workspace
from tests.factories import make_delivery, seed, wait_until


def store_in_another_process(store_path, script: str) -> None:
    """Write to the store from a process of its own, as `listen` or `import` would."""
    code = ("from hookinspect.store.sqlite import Store\nfrom tests.factories import make_attempt, make_delivery\n"
            f"with Store({str(store_path)!r}) as store:\n    {script}\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_followed_workspace_announces_another_processes_captures_and_attempts(store_path):
    seed(store_path, make_delivery())
    with Workspace(store_path) as workspace:
        heard: list[StoreChange] = []
        workspace.changes.subscribe(heard.append)
        unfollow = workspace.follow()
        try:
            store_in_another_process(store_path, "store.insert_delivery(make_delivery()); store.insert_delivery(make_delivery())")
            wait_until(lambda: any(c.kind == ChangeKind.DELIVERIES and c.seq == 3 for c in heard), what="deliveries up to #3")
            store_in_another_process(store_path, "store.add_attempt(make_attempt(2, 500))")
            wait_until(lambda: any(c.kind == ChangeKind.ATTEMPT and c.seq == 2 for c in heard), what="an attempt on #2")
            store_in_another_process(store_path, "store.delete([1])")
            wait_until(lambda: heard[-1].kind == ChangeKind.STORE, what="a re-read after a delete")
        finally:
            unfollow()
        assert [c.seq for c in heard if c.kind == ChangeKind.DELIVERIES] == [3]  # once, not once per look


def test_followers_share_one_thread_that_ends_with_the_last(store_path):
    seed(store_path)
    with Workspace(store_path) as workspace:
        def followers() -> int:
            return sum(t.name == "hookinspect-follow" and t.is_alive() for t in threading.enumerate())

        first, second = workspace.follow(), workspace.follow()
        assert followers() == 1
        first()
        first()  # a second stop of the same follower changes nothing
        assert followers() == 1
        second()
        wait_until(lambda: followers() == 0, what="the follow thread ending")


def test_closing_a_followed_workspace_stops_its_follower(store_path):
    seed(store_path)
    workspace = Workspace(store_path)
    workspace.follow()
    workspace.close()
    wait_until(lambda: not any(t.name == "hookinspect-follow" and t.is_alive() for t in threading.enumerate()),
               what="the follow thread ending")
