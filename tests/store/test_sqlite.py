import sqlite3
import subprocess
import sys
import textwrap

import pytest

from hookinspect.errors import NotFoundError, StoreError
from hookinspect.formats.filters import parse_filter
from hookinspect.store.sqlite import SCHEMA_VERSION, Store
from tests.factories import make_attempt, make_delivery


def test_insert_and_get_by_seq_and_id_are_byte_exact(store):
    body = b"\x00\xff binary \x1b[31m"
    delivery = make_delivery(body, headers=[("X-Dup", "1"), ("x-dup", "2")], query="a=%20&b")
    seq = store.insert_delivery(delivery)
    assert seq == 1 and delivery.seq == 1
    for ref in (1, "1", delivery.id, delivery.id[:8]):
        got = store.get(ref)
        assert got.body == body and got.headers == delivery.headers and got.query == "a=%20&b"
        assert got.received_us == delivery.received_us


def test_unknown_delivery_is_not_found(store):
    with pytest.raises(NotFoundError, match="no delivery #42"):
        store.get(42)


def test_list_is_newest_first_with_paging(store):
    for i in range(30):
        store.insert_delivery(make_delivery(path=f"/p/{i}"))
    rows = store.list(limit=10)
    assert [r.seq for r in rows] == list(range(30, 20, -1))
    assert [r.seq for r in store.list(limit=5, offset=10)] == [20, 19, 18, 17, 16]
    assert [r.seq for r in store.list(limit=3, before_seq=5)] == [4, 3, 2]
    assert store.count() == 30


def test_filters_method_path_type_time_and_text(store):
    store.insert_delivery(make_delivery(b'{"type":"invoice.paid"}', path="/stripe/hook", received_us=1_000_000))
    store.insert_delivery(make_delivery(b"a=1", method="PUT", path="/github/hook", content_type="application/x-www-form-urlencoded", received_us=2_000_000))
    store.insert_delivery(make_delivery(b"plain refund text", path="/other", content_type="text/plain; charset=utf-8", received_us=3_000_000))
    assert [r.seq for r in store.list(parse_filter("method:PUT"))] == [2]
    assert [r.seq for r in store.list(parse_filter("path:/stripe/*"))] == [1]
    assert [r.seq for r in store.list(parse_filter("ct:text/plain"))] == [3]
    assert [r.seq for r in store.list(parse_filter("refund"))] == [3]
    assert [r.seq for r in store.list(parse_filter("github"))] == [2]  # text matches the path too
    assert [r.seq for r in store.list(parse_filter("since:1970-01-01T00:00:01.5Z until:1970-01-01T00:00:02.5Z"))] == [2]
    assert [r.seq for r in store.list(parse_filter("$.type=invoice.paid"))] == [1]
    assert store.count(parse_filter("method:POST")) == 2


def test_status_filters_use_the_latest_attempt(store):
    for _ in range(4):
        store.insert_delivery(make_delivery())
    store.add_attempt(make_attempt(1, 200))
    store.add_attempt(make_attempt(2, 200))
    store.add_attempt(make_attempt(2, 503))
    store.add_attempt(make_attempt(3, None, error_kind="connect"))
    assert [r.seq for r in store.list(parse_filter("status:5xx"))] == [2]
    assert [r.seq for r in store.list(parse_filter("status:failed"))] == [3, 2]
    assert [r.seq for r in store.list(parse_filter("status:error"))] == [3]
    assert [r.seq for r in store.list(parse_filter("status:none"))] == [4]
    assert store.row(2).last_status == 503


def test_attempts_are_kept_in_order_with_request_and_response(store):
    store.insert_delivery(make_delivery())
    store.add_attempt(make_attempt(1, 500, body=b"boom"))
    store.add_attempt(make_attempt(1, None, error_kind="timeout"))
    attempts = store.attempts(1)
    assert [a.number for a in attempts] == [1, 2]
    assert attempts[0].response.status == 500 and attempts[0].response.body == b"boom"
    assert attempts[1].response is None and attempts[1].error_kind == "timeout"
    assert attempts[0].request.body == b"{}"


def test_listing_after_a_number_gives_only_newer_deliveries_oldest_first(store):
    """What a live reader asks for: everything after the newest it has shown."""
    for _ in range(5):
        store.insert_delivery(make_delivery())
    assert [r.seq for r in store.list(before_seq=3, oldest_first=True)] == [4, 5]
    assert store.list(before_seq=5, oldest_first=True) == []
    assert store.max_seq() == 5


def test_delete_and_clear_cascade_attempts_and_never_reuse_numbers(store):
    for _ in range(3):
        store.insert_delivery(make_delivery())
    store.add_attempt(make_attempt(2))
    assert store.delete([2, 99]) == 1
    assert store.attempts(2) == []
    assert store.clear() == 2
    assert store.insert_delivery(make_delivery()) == 4


def test_a_batch_of_several_statements_is_numbered_in_order_and_stored_whole(store):
    batch = [make_delivery(f"{i}".encode(), path=f"/b/{i}") for i in range(600)]  # several INSERT statements
    assert store.insert_deliveries(batch) == list(range(1, 601))
    assert [d.seq for d in batch] == list(range(1, 601))
    assert store.get(600).path == "/b/599" and store.get(257).body == b"256"
    store.delete([600])
    assert store.insert_deliveries([make_delivery(b"next")]) == [601]


def test_store_is_wal_and_versioned(store_path):
    Store(store_path).close()
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"my precious notes, not a database")
    with pytest.raises(StoreError, match="not a hookinspect store"):
        Store(path)
    assert path.read_bytes() == b"my precious notes, not a database"


def test_a_corrupt_store_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "store.db"
    with Store(path) as store:
        store.insert_delivery(make_delivery())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # wreck the schema page but keep the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="not a readable hookinspect store"):
        Store(path)
    assert path.read_bytes() == bytes(data)


def test_another_programs_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="another program"):
        Store(path)
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]


def test_a_store_from_a_newer_version_is_refused(store_path):
    Store(store_path).close()
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer hookinspect"):
        Store(store_path)


def test_readers_do_not_create_a_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        Store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_a_reader_process_lists_while_a_writer_process_inserts(store_path):
    Store(store_path).close()
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from hookinspect.store.sqlite import Store
        from tests.factories import make_delivery
        with Store({str(store_path)!r}) as s:
            for i in range(400):
                with s.transaction():
                    s.insert_delivery(make_delivery(b"x" * 2048))
    """)])
    reader = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from hookinspect.store.sqlite import Store
        seen = 0
        with Store({str(store_path)!r}, create=False) as s:
            deadline = time.time() + 30
            while time.time() < deadline:
                rows = s.list(limit=50)
                assert [r.seq for r in rows] == sorted((r.seq for r in rows), reverse=True)
                seen = max(seen, s.count())
                if seen >= 400:
                    break
        print(seen)
    """)], capture_output=True, text=True, timeout=60)
    assert writer.wait(timeout=60) == 0
    assert reader.returncode == 0, reader.stderr
    assert int(reader.stdout) == 400


def test_a_version_1_store_is_migrated_in_place_and_keeps_its_data(tmp_path):
    import shutil
    from pathlib import Path

    path = tmp_path / "old.db"
    shutil.copy(Path(__file__).resolve().parents[1] / "data" / "store-v1.db", path)
    with Store(path) as store:
        delivery = store.get(1)
        assert delivery.body == b'{"type":"v1"}\xff\x00\x01' and delivery.headers.get_all("x-dup") == ["1", "2"]
        assert delivery.origin is None
        store.enqueue(1, "http://127.0.0.1:9/", 0)  # version 2 table exists
        second = make_delivery(origin="https://relay.example/c/abc#7")
        store.insert_delivery(second)
        assert store.has_origin("https://relay.example/c/abc#7")  # version 3 columns exist
        assert store.latest_origin_id("https://relay.example/c/abc#") == 7
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_opening_the_store_again_in_the_writers_process_keeps_other_readers_in_sync(store_path):
    # Regression: a plain open()/close() of the file dropped the writer's POSIX locks, so another
    # process checkpointed and deleted the WAL under the live writer and saw none of its commits.
    script = textwrap.dedent(f"""
        import asyncio, sys
        from hookinspect.store.sqlite import Store
        from hookinspect.store.writer import GroupCommitWriter, Insert
        from tests.factories import make_delivery

        async def main():
            writer = GroupCommitWriter({str(store_path)!r})
            await asyncio.to_thread(writer.start)
            with Store({str(store_path)!r}) as again:  # e.g. a resume read or a UI reader
                again.count()
            print("ready", flush=True)
            sys.stdin.readline()
            await writer.submit(Insert(make_delivery()))
            print("inserted", flush=True)
            sys.stdin.readline()
            await asyncio.to_thread(writer.close)

        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with Store(store_path) as reader:
            assert reader.count() == 0
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "inserted"
        with Store(store_path) as reader:
            assert reader.count() == 1  # visible while the writer is still running
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_a_store_being_created_by_another_process_is_never_taken_for_a_foreign_one(tmp_path):
    """Its tables and its id are committed together; a reader that looked at them one at a
    time could see the first without the second."""
    import multiprocessing
    context = multiprocessing.get_context("fork")
    for n in range(100):
        path = tmp_path / f"s{n}.db"
        creator = context.Process(target=_create_store, args=(str(path),))
        creator.start()
        while creator.is_alive() or not path.exists():
            if path.exists():
                try:
                    Store(path).close()
                except StoreError as exc:
                    assert "another program" not in exc.message
                    raise
        creator.join(10)


def _create_store(path: str) -> None:
    Store(path).close()
