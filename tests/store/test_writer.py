import asyncio
import sqlite3

import pytest

from hookinspect.errors import StoreError
from hookinspect.store.sqlite import Store
from hookinspect.store.writer import GroupCommitWriter, Insert
from tests.factories import make_delivery


async def test_concurrent_inserts_share_transactions_and_all_commit(store_path):
    writer = GroupCommitWriter(store_path)
    await asyncio.to_thread(writer.start)
    try:
        seqs = await asyncio.gather(*(writer.submit(Insert(make_delivery())) for _ in range(300)))
    finally:
        await asyncio.to_thread(writer.close)
    assert sorted(seqs) == list(range(1, 301))
    assert writer.commits < 300  # grouped, not one commit per insert
    with Store(store_path) as store:
        assert store.count() == 300


async def test_one_failing_operation_does_not_fail_its_batch(store_path):
    writer = GroupCommitWriter(store_path)
    await asyncio.to_thread(writer.start)

    def broken(store):
        raise ValueError("bad operation")

    try:
        results = await asyncio.gather(
            writer.submit(Insert(make_delivery())), writer.submit(broken), writer.submit(Insert(make_delivery())),
            return_exceptions=True,
        )
    finally:
        await asyncio.to_thread(writer.close)
    assert results[0] in (1, 2) and results[2] in (1, 2)
    assert isinstance(results[1], ValueError)


async def test_writer_reports_a_store_it_cannot_open(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all")
    writer = GroupCommitWriter(bad)
    with pytest.raises(StoreError):
        await asyncio.to_thread(writer.start)


async def test_a_duplicate_in_a_batch_of_captures_fails_alone(store_path):
    # A batch of plain captures is one INSERT statement: one bad row fails the statement, so
    # the writer stores the others one by one and only the duplicate gets its error.
    writer = GroupCommitWriter(store_path)
    await asyncio.to_thread(writer.start)
    try:
        first = make_delivery(b"first")
        first.origin = "https://relay.example/c/x#1"
        assert await writer.submit(Insert(first)) == 1
        again = make_delivery(b"again")
        again.origin = first.origin
        results = await asyncio.gather(
            writer.submit(Insert(make_delivery(b"a"))), writer.submit(Insert(again)),
            writer.submit(Insert(make_delivery(b"b"))), return_exceptions=True,
        )
    finally:
        await asyncio.to_thread(writer.close)
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert sorted([results[0], results[2]]) == [2, 3]  # the failed statement used up no numbers
    with Store(store_path) as store:
        assert sorted(bytes(store.get(seq).body) for seq in store.seqs()) == [b"a", b"b", b"first"]


def fill_up(writer: GroupCommitWriter) -> int:
    """Cap the store at its current size, as a full disk would: the next page it needs fails."""
    return writer.submit(lambda store: store.execute(
        "PRAGMA max_page_count = " + str(store.execute("PRAGMA page_count").fetchone()[0])).fetchone()[0]).result()


def free_space(writer: GroupCommitWriter) -> None:
    writer.submit(lambda store: store.execute("PRAGMA max_page_count = 1073741823")).result()


@pytest.mark.parametrize("with_queue", [False, True])
async def test_a_full_store_fails_each_caller_and_the_writer_lives_on(store_path, with_queue):
    from hookinspect.errors import StoreFullError

    writer = GroupCommitWriter(store_path)
    await asyncio.to_thread(writer.start)
    try:
        await writer.submit(Insert(make_delivery()))
        await asyncio.to_thread(fill_up, writer)
        # A batch of captures (queued ones need a transaction: its COMMIT path is tested too).
        targets = ("http://127.0.0.1:9/",) if with_queue else ()
        results = await asyncio.wait_for(asyncio.gather(
            *(writer.submit(Insert(make_delivery(b"x" * 5000), targets)) for _ in range(40)),
            return_exceptions=True), timeout=10)
        assert results and all(isinstance(r, StoreFullError) for r in results), results[:3]
        assert "disk holding" in results[0].message and "full" in results[0].message
        await asyncio.to_thread(free_space, writer)
        seqs = await asyncio.wait_for(asyncio.gather(*(writer.submit(Insert(make_delivery(), targets))
                                                       for _ in range(5))), timeout=10)
    finally:
        await asyncio.to_thread(writer.close)
    assert len(seqs) == 5
    with Store(store_path) as store:
        assert store.count() == 6  # the first one and the five after the space came back
        assert sum(store.queue_counts().values()) == (5 if with_queue else 0)


def test_a_failed_commit_is_rolled_back(store_path):
    with Store(store_path) as store:
        store.insert_delivery(make_delivery())
        pages = store.execute("PRAGMA page_count").fetchone()[0]
        store.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match="full"), store.transaction():
            store.insert_deliveries([make_delivery(b"y" * 20000) for _ in range(5)])
        assert not store._conn.in_transaction
        store.execute("PRAGMA max_page_count = 1073741823")
        store.insert_delivery(make_delivery())  # the connection still writes
        assert store.count() == 2


def test_outside_an_event_loop_submit_blocks_on_its_future(store_path):
    # A CLI command has no event loop: the same one way in, waited on with .result().
    writer = GroupCommitWriter(store_path)
    writer.start()
    try:
        assert writer.submit(Insert(make_delivery()), blocking=True) == 1
        assert writer.submit(lambda store: store.count()).result(timeout=10) == 1  # a thread: a concurrent future
    finally:
        writer.close()


async def test_a_blocking_submit_works_whether_or_not_its_caller_runs_a_loop(store_path):
    # Workspace.write and the pytest plugin's clear() are synchronous APIs: called from an async
    # test they still wait for their COMMIT instead of getting a future they cannot wait on.
    writer = GroupCommitWriter(store_path)
    await asyncio.to_thread(writer.start)
    try:
        assert writer.submit(Insert(make_delivery()), blocking=True) == 1
    finally:
        await asyncio.to_thread(writer.close)
