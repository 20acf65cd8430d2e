import pytest

from hookinspect.relay.storage import RelayEvent, SqliteRelayStorage


def event(channel, body=b"{}"):
    return RelayEvent(0, channel, 1, "POST", "/", "", [("Content-Type", "application/json")], body)


def test_a_batch_gets_consecutive_ids_and_reads_back_byte_exact(tmp_path):
    storage = SqliteRelayStorage(tmp_path)
    try:
        bodies = [bytes([i % 256]) * (i % 7 + 1) for i in range(5000)]  # more rows than one statement takes
        ids = storage.append_many([event("a", body) for body in bodies])
        assert ids == list(range(1, 5001))
        assert storage.append_many([event("b")]) == [5001]
        stored = storage.events_after("a", 0, limit=10_000)
        assert [e.body for e in stored] == bodies and [e.id for e in stored] == ids
    finally:
        storage.close()


def test_power_durability_syncs_every_commit_and_process_leaves_it_to_the_os(tmp_path):
    for durability, level in (("power", 2), ("process", 1)):  # PRAGMA synchronous: 2 FULL, 1 NORMAL
        storage = SqliteRelayStorage(tmp_path / durability, durability)
        try:
            assert storage._conn.execute("PRAGMA synchronous").fetchone()[0] == level
        finally:
            storage.close()


def test_commits_leave_the_log_to_checkpoint_which_moves_it_into_the_file(tmp_path):
    storage = SqliteRelayStorage(tmp_path)
    try:
        for _ in range(60):  # ~6 MiB, more than SQLite's own checkpoint threshold (4 MiB)
            storage.append_now([event("a", bytes(100 * 1024))])
        assert (tmp_path / "relay.db").stat().st_size < 1024 * 1024  # no commit checkpointed by itself
        storage.checkpoint()
        assert (tmp_path / "relay.db").stat().st_size > 5 * 1024 * 1024
        assert len(storage.events_after("a", 0, limit=100)) == 60
    finally:
        storage.close()
    wal = tmp_path / "relay.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # closed: the log is folded in


def test_a_full_disk_is_one_store_error_and_storing_resumes_when_there_is_room(tmp_path):
    from hookinspect.errors import StoreFullError

    storage = SqliteRelayStorage(tmp_path)
    try:
        storage.append_many([event("a")])
        pages = storage._conn.execute("PRAGMA page_count").fetchone()[0]
        storage._conn.execute(f"PRAGMA max_page_count = {pages}")  # as full as a disk can be
        for append in (storage.append_many, storage.append_now):
            with pytest.raises(StoreFullError, match="is full"):
                append([event("a", bytes(64 * 1024))])
        storage._conn.execute("PRAGMA max_page_count = 1073741823")
        assert storage.append_now([event("a", bytes(64 * 1024))]) == [2]
    finally:
        storage.close()


def test_after_a_stop_without_close_numbering_jumps_past_what_a_power_cut_may_have_taken(tmp_path):
    storage = SqliteRelayStorage(tmp_path)
    assert storage.append_many([event("a")]) == [1]
    storage.close()
    storage = SqliteRelayStorage(tmp_path)  # closed cleanly: numbering goes on
    assert storage.append_now([event("a")]) == [2]
    storage._conn.close()  # as a crash, kill -9 or power cut leaves it: never closed
    storage = SqliteRelayStorage(tmp_path)
    try:
        gap = SqliteRelayStorage.ID_GAP_AFTER_UNCLEAN_STOP
        assert storage.append_now([event("a")]) == [3 + gap]
        assert [e.id for e in storage.events_after("a", 0)] == [1, 2, 3 + gap]
    finally:
        storage.close()
