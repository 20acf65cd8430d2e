import asyncio

import pytest

from hookinspect.errors import StoreError
from hookinspect.store.sqlite import Store
from hookinspect.store.writer import GroupCommitWriter
from tests.factories import make_delivery


async def test_concurrent_inserts_share_transactions_and_all_commit(store_path):
    writer = GroupCommitWriter(store_path)
    await asyncio.to_thread(writer.start)
    try:
        seqs = await asyncio.gather(*(writer.insert_delivery(make_delivery()) for _ in range(300)))
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
            writer.insert_delivery(make_delivery()), writer.call(broken), writer.insert_delivery(make_delivery()),
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
