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
