"""`hookinspect queue`: list, retry, cancel, pause and resume the forward queue of `listen --ack`."""

import json

from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.store.sqlite import Store
from hookinspect.values import now_us
from tests.factories import make_delivery

runner = CliRunner()
TARGET = "http://127.0.0.1:9/in"


def queued_store(store_path, count=3):
    with Store(store_path) as store, store.transaction():
        for seq in store.insert_deliveries([make_delivery(b"%d" % i) for i in range(count)]):
            store.enqueue(seq, TARGET, now_us() + 60_000_000)
        store.queue_update(1, "dead", 10, 0, "500")


def run(store_path, *args):
    return runner.invoke(app, ["queue", *args, "--store", str(store_path)])


def test_queue_lists_pending_items_as_json_and_as_a_table(store_path):
    queued_store(store_path)
    result = run(store_path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(i["seq"], i["state"], i["target"]) for i in data["items"]] == [(2, "pending", TARGET), (3, "pending", TARGET)]
    assert data["items"][0]["next_at"].endswith("Z") and data["paused"] == []
    with_dead = json.loads(run(store_path, "--dead", "--json").stdout)
    assert [i["seq"] for i in with_dead["items"]] == [1, 2, 3]
    table = run(store_path)
    assert table.exit_code == 0 and TARGET in table.stdout


def test_retry_makes_items_due_now_and_revives_given_up_ones(store_path):
    queued_store(store_path)
    result = run(store_path, "retry", "1", "2", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"retried": 2}
    with Store(store_path) as store:
        items = {item.delivery_seq: item for item in store.queue_items()}
    assert set(items) == {1, 2, 3} and items[1].next_at_us <= now_us() and items[3].next_at_us > now_us()


def test_cancel_and_the_all_flag(store_path):
    queued_store(store_path)
    assert json.loads(run(store_path, "cancel", "--all", "--json").stdout) == {"cancelled": 2}
    with Store(store_path) as store:
        assert store.queue_counts() == {"dead": 1, "cancelled": 2}
    both = run(store_path, "cancel", "2", "--all")
    neither = run(store_path, "retry")
    for result in (both, neither):
        assert result.exit_code == 2 and "name the deliveries" in result.stderr


def test_retry_or_cancel_of_deliveries_with_nothing_queued_says_so(store_path):
    queued_store(store_path)
    assert json.loads(run(store_path, "cancel", "2", "--json").stdout) == {"cancelled": 1}
    for args, said in ((["cancel", "2"], "nothing to cancel among 2"), (["retry", "99"], "nothing to retry among 99"),
                       (["cancel", "1"], "nothing to cancel among 1")):  # 1 was given up: retry, not cancel
        result = run(store_path, *args)
        assert result.exit_code == 2 and said in result.stderr, result.output
    assert run(store_path, "retry", "1").exit_code == 0


def test_pause_and_resume_a_target(store_path):
    queued_store(store_path)
    assert run(store_path, "pause", TARGET).exit_code == 0
    assert json.loads(run(store_path, "--json").stdout)["paused"] == [TARGET]
    assert run(store_path, "resume", TARGET).exit_code == 0
    again = run(store_path, "resume", TARGET)
    assert again.exit_code == 2 and "is not paused" in again.stderr


def test_show_and_attempts_say_a_delivery_is_queued(store_path):
    queued_store(store_path)
    shown = runner.invoke(app, ["show", "2", "--store", str(store_path)])
    assert "queued for " + TARGET in shown.stdout and "next try at" in shown.stdout
    attempts = runner.invoke(app, ["attempts", "1", "--store", str(store_path)])
    assert "gave up on " + TARGET in attempts.stdout and "queue retry 1" in attempts.stdout
    as_json = json.loads(runner.invoke(app, ["show", "2", "--json", "--store", str(store_path)]).stdout)
    assert as_json["queue"][0]["state"] == "pending"


def test_queue_ls_is_the_list_and_queue_alone_its_alias(tmp_path):
    from typer.testing import CliRunner

    from hookinspect.cli.app import app
    from hookinspect.store.sqlite import Store
    from tests.factories import make_delivery

    store_path = tmp_path / "s.db"
    with Store(store_path) as store:
        store.insert_delivery(make_delivery())
        store.enqueue(1, "http://127.0.0.1:9/in", 0)
    runner = CliRunner()
    listed = [runner.invoke(app, [*args, "--json", "--store", str(store_path)]) for args in (["queue"], ["queue", "ls"])]
    assert all(r.exit_code == 0 for r in listed) and listed[0].stdout == listed[1].stdout
    assert '"seq": 1' in listed[0].stdout
