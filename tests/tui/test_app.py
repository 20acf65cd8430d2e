"""The TUI through Textual's Pilot, over real stores and real loopback targets."""

import asyncio
import json

import pytest
from textual import events
from textual.keys import _character_to_key
from textual.widgets import Input, TabbedContent

from hookinspect.intake.background import ReceiverProcess
from hookinspect.store.sqlite import Store
from hookinspect.tui.app import HookinspectApp
from hookinspect.tui.widgets.delivery_list import DeliveryList
from hookinspect.tui.widgets.lines_view import LinesView
from hookinspect.workspace import Workspace
from tests.factories import make_delivery, seed


def rendered(app, selector):
    """The plain text a view or a Static shows (what a user reads)."""
    widget = app.query_one(selector)
    if isinstance(widget, LinesView):
        return widget.plain
    content = widget.content
    console = app.console
    return "".join(segment.text for segment in console.render(content, console.options.update_width(200)))


async def ui_until(pilot, predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


async def listed(pilot, timeout=10.0):
    """Until the app shows its first numbers (read in a worker, never on the UI thread)."""
    await ui_until(pilot, lambda: pilot.app.is_listed, timeout)


async def shows(pilot, app, selector, *texts, timeout=5.0):
    """Wait until the view shows every one of `texts` (details are computed in a worker)."""
    await ui_until(pilot, lambda: all(t in rendered(app, selector) for t in texts), timeout)
    return rendered(app, selector)


async def test_the_list_fills_newest_first_and_shows_the_detail(store_path, workspace):
    seed(store_path, *(make_delivery(f'{{"n":{i}}}'.encode(), path=f"/hook/{i}") for i in range(5)))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        table = app.query_one(DeliveryList)
        assert table.seqs == [5, 4, 3, 2, 1]
        await shows(pilot, app, "#request", "/hook/4")
        await pilot.press("j")
        await shows(pilot, app, "#request", "/hook/3")


async def test_a_delivery_stored_by_another_writer_appears(store_path, workspace):
    seed(store_path, make_delivery(path="/first"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await asyncio.to_thread(seed, store_path, make_delivery(path="/from-elsewhere"))
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs[:1] == [2], timeout=2)


async def test_filter_narrows_the_list_and_a_bad_filter_is_a_notification(store_path, workspace):
    seed(store_path, make_delivery(method="PUT", path="/a"), make_delivery(path="/b"), make_delivery(b'{"amount":5000}', path="/c"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await listed(pilot)
        await pilot.press("slash")
        filter_input = app.query_one("#filter", Input)
        filter_input.value = "$.amount>1000"
        await pilot.press("enter")
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs == [3])
        assert not filter_input.has_class("visible")  # the box closes; the status bar says what applies
        await ui_until(pilot, lambda: "filter $.amount>1000 1 match" in rendered(app, "#status"))
        await pilot.press("slash")
        filter_input.value = "status:9xx"
        await pilot.press("enter")
        assert any("bad status" in n.message for n in app._notifications)
        assert app.query_one(DeliveryList).seqs == [3]  # the previous filter stays


async def test_r_replays_to_a_real_target_and_shows_the_attempt(store_path, workspace, target):
    seed(store_path, make_delivery(b'{"replay":"me"}'))
    app = HookinspectApp(workspace, target=target.url + "/in")
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        assert target.received[0]["body"] == b'{"replay":"me"}'
        await shows(pilot, app, "#attempts", "200")
    with Store(store_path) as store:
        assert store.attempts(1)[0].target_url == target.url + "/in"


async def test_e_edits_and_replays_without_changing_the_delivery(store_path, workspace, target):
    seed(store_path, make_delivery(b'{"a":1}', headers=[("X-Old", "1")]))
    app = HookinspectApp(workspace, target=target.url + "/")
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("e")
        await pilot.pause()
        editor = app.screen
        editor.query_one("#body").text = '{"a":2}'
        editor.query_one("#headers").text = "Content-Type: application/json\nX-New: yes"
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
    got = target.received[0]
    assert got["body"] == b'{"a":2}'
    names = [k.decode().lower() for k, _ in got["headers"]]
    assert "x-new" in names and "x-old" not in names
    with Store(store_path) as store:
        assert store.get(1).body == b'{"a":1}'


async def test_d_shows_a_diff_with_the_previous_delivery_of_the_same_event(store_path, workspace):
    first = make_delivery(b'{"type":"invoice.paid","amount":100}')
    second = make_delivery(b'{"type":"invoice.paid","amount":250}')
    for d in (first, second):
        d.provider, d.event_type = "stripe", "invoice.paid"
    seed(store_path, first, second)
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("d")
        assert app.query_one("#detail TabbedContent", TabbedContent).active == "tab-diff"
        await shows(pilot, app, "#diff", "#1 → #2", "body.amount", "100 → 250")


async def test_a_hostile_body_renders_as_literal_text(store_path, workspace):
    hostile = b"\x1b[2J\x1b]52;c;cHduZWQ=\x07\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\ [bold red]markup[/] [link=x]y[/link]"
    seed(store_path, make_delivery(hostile, content_type="text/plain", path="/\x1b[31mred", headers=[("X-T", "\x1b]0;title\x07")]))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(160, 40)) as pilot:
        await listed(pilot)
        text = await shows(pilot, app, "#request", "Body")
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b[2J" in text and "[bold red]markup[/]" in text and "[link=x]y[/link]" in text
        assert "\\x1b]0;title\\x07" in text


async def test_mark_and_export_write_a_har(store_path, workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seed(store_path, make_delivery(path="/x"), make_delivery(path="/y"), make_delivery(path="/z"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("space", "j", "j", "space", "x")
        await pilot.press("enter")  # the default name
        await ui_until(pilot, lambda: list(tmp_path.glob("hookinspect-*.har")))
    [har] = list(tmp_path.glob("hookinspect-*.har"))
    assert [e["request"]["url"].rsplit("/", 1)[1] for e in json.loads(har.read_text())["log"]["entries"]] == ["x", "z"]


async def test_delete_and_help(store_path, workspace):
    seed(store_path, make_delivery(path="/keep"), make_delivery(path="/drop"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("delete", "y")
        assert app.query_one(DeliveryList).seqs == [1]
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
    with Store(store_path) as store:
        assert store.count() == 1


async def test_listen_ui_captures_and_shows_refusals(tmp_path):
    import httpx

    from hookinspect.intake.receiver import ReceiverSettings
    from tests.factories import free_port

    port = free_port()
    receiver = ReceiverProcess(tmp_path / "s.db", ReceiverSettings(max_body=10), "127.0.0.1", port)
    receiver.start()
    try:
        app = HookinspectApp(Workspace(tmp_path / "s.db", create=True), receiver=receiver)
        async with app.run_test(size=(140, 40), notifications=True) as pilot:
            await listed(pilot)
            assert app.listening_on == f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as client:
                await client.post(app.listening_on + "/in", content=b"{}")
                assert (await client.post(app.listening_on + "/big", content=b"x" * 100)).status_code == 413
            await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs == [1])
            await ui_until(pilot, lambda: any("body over 10 bytes" in n.message for n in app._notifications))
        app.workspace.close()
    finally:
        receiver.stop()


def test_a_receiver_that_cannot_listen_says_why_in_one_line(tmp_path):
    import socket

    from hookinspect.errors import HookinspectError
    from hookinspect.intake.receiver import ReceiverSettings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        receiver = ReceiverProcess(tmp_path / "s.db", ReceiverSettings(), "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(HookinspectError, match="cannot listen on 127.0.0.1"):
            receiver.start()
    assert receiver.pid is None  # stopped and reaped


async def test_long_arrays_fold_and_A_shows_everything(store_path, workspace):
    seed(store_path, make_delivery(json.dumps({"items": list(range(300))}).encode()))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await shows(pilot, app, "#request", "290 more items (folded)")
        await pilot.press("A")
        await ui_until(pilot, lambda: "folded" not in rendered(app, "#request") and "299" in rendered(app, "#request"))


async def test_replays_from_the_ui_share_its_writer(store_path, workspace, target, monkeypatch):
    from tests.cli.test_replay import count_connections

    seed(store_path, make_delivery(b'{"n":1}'), make_delivery(b'{"n":2}'))
    app = HookinspectApp(workspace, target=target.url + "/in")
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("r")
        await ui_until(pilot, lambda: len(target.received) == 1)
        writer = workspace.writer
        opened = count_connections(monkeypatch, store_path)
        await pilot.press("j", "r")
        await ui_until(pilot, lambda: len(target.received) == 2)
        await app.workers.wait_for_complete()
        assert workspace.writer is writer and opened == []  # no store opened for a replay
        await ui_until(pilot, lambda: "200" in rendered(app, "#attempts"))


async def test_deliveries_arriving_while_help_is_open_do_not_break_the_ui(store_path, workspace):
    seed(store_path, make_delivery(path="/before"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await asyncio.to_thread(seed, store_path, make_delivery(path="/during-help"))
        from hookinspect.recorder import Recorder
        await Recorder(workspace).record(make_delivery(path="/announced-during-help"))
        await pilot.pause()
        await pilot.press("escape")
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs[:1] == [3])


async def test_enter_focuses_the_detail_and_paused_follow_counts_what_is_new(store_path, workspace):
    from textual.widgets import TabbedContent

    seed(store_path, make_delivery(path="/a"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("enter")
        assert isinstance(app.focused, TabbedContent) or app.focused in app.query_one(TabbedContent).query("*")
        await pilot.press("escape", "f")
        seed(store_path, make_delivery(path="/b"), make_delivery(path="/c"))
        await ui_until(pilot, lambda: "paused (f) · 2 new" in rendered(app, "#status"))
        assert app.query_one(DeliveryList).seqs == [1]  # paused: the list stays as it was
        await pilot.press("f")
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs == [3, 2, 1])
        assert "new" not in rendered(app, "#status")


async def test_g_goes_to_the_newest_and_the_status_says_the_rate(store_path, workspace):
    seed(store_path, *(make_delivery(path=f"/{n}") for n in range(5)))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await pilot.press("j", "j", "j")
        assert app.query_one(DeliveryList).current_seq == 2
        await pilot.press("g")
        assert app.query_one(DeliveryList).current_seq == 5
        assert "0/s, 0 in the last minute" in rendered(app, "#status")


def seed_many(store_path, count, body=lambda n: b'{"n":%d}' % n):
    with Store(store_path) as store:
        store.insert_deliveries([make_delivery(body(n), path=f"/bulk/{n}") for n in range(count)])


async def test_a_big_store_pages_to_the_oldest_and_back_without_loading_everything(store_path, workspace):
    from hookinspect.tui.widgets.delivery_list import ROW_CACHE

    seed_many(store_path, 5000)
    app = HookinspectApp(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await listed(pilot)
        table = app.query_one(DeliveryList)
        await ui_until(pilot, lambda: table.index.complete and len(table.index) == 5000)
        assert table.border_subtitle == "row 1 of 5,000"
        await pilot.press("G")
        assert table.current_seq == 1 and table.border_subtitle == "row 5,000 of 5,000"
        await shows(pilot, app, "#request", "/bulk/0")
        await pilot.press("pageup")
        assert table.current_seq == 1 + table.page
        await pilot.press("g")
        assert table.current_seq == 5000
        await pilot.press("end", "home")
        assert table.current_seq == 5000
        for _ in range(30):
            await pilot.press("pagedown")
        assert len(table._rows) <= ROW_CACHE  # rows read while paging are bounded


async def test_a_burst_of_any_size_appears_whole(store_path, workspace):
    seed(store_path, make_delivery(path="/first"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await listed(pilot)
        await asyncio.to_thread(seed_many, store_path, 3000)
        table = app.query_one(DeliveryList)
        await ui_until(pilot, lambda: len(table.index) == 3001, timeout=10)
        assert table.seqs == list(range(3001, 0, -1))
        assert table.current_seq == 3001  # following: the newest is shown


async def test_delete_asks_first_and_u_brings_it_back(store_path, workspace):
    seed(store_path, make_delivery(path="/a"), make_delivery(path="/b"), make_delivery(path="/c"))
    app = HookinspectApp(workspace, )
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await listed(pilot)
        table = app.query_one(DeliveryList)
        await pilot.press("delete", "n")
        assert table.seqs == [3, 2, 1]
        await pilot.press("j", "delete", "y")
        assert table.seqs == [3, 1]
        assert any("u brings it back" in n.message for n in app._notifications)
        await pilot.press("u")
        assert table.seqs == [3, 2, 1] and table.current_seq == 2
        await pilot.press("space", "j", "space", "delete", "y")  # the marked ones
        assert table.seqs == [3]
        with Store(store_path) as store:
            assert store.count() == 3  # restorable until the window ends or the UI closes
    with Store(store_path) as store:
        assert store.seqs() == [3]


async def test_export_asks_for_a_file_and_its_extension_picks_the_format(store_path, workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seed(store_path, make_delivery(b'{"a":1}', path="/x"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await listed(pilot)
        await pilot.press("x")
        prompt = app.screen.query_one(Input)
        assert prompt.value.startswith("hookinspect-") and prompt.value.endswith(".har")  # the default is shown
        prompt.value = "case.json"
        await pilot.press("enter")
        await ui_until(pilot, lambda: (tmp_path / "case.json").exists())
        await pilot.press("x")
        app.screen.query_one(Input).value = "case.docx"
        await pilot.press("enter")
        assert any("unknown export extension .docx" in n.message for n in app._notifications)
    fixture = json.loads((tmp_path / "case.json").read_text())
    assert "deliveries" in fixture or isinstance(fixture, list)


async def test_s_saves_the_decoded_body_and_y_copies_it(store_path, workspace, tmp_path, monkeypatch):
    import gzip

    monkeypatch.chdir(tmp_path)
    seed(store_path, make_delivery(gzip.compress(b'{"big":"report"}'), headers=[("Content-Encoding", "gzip")]))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await listed(pilot)
        await pilot.press("s")
        assert app.screen.query_one(Input).value == "hookinspect-1-body.json"
        await pilot.press("enter")
        await ui_until(pilot, lambda: (tmp_path / "hookinspect-1-body.json").exists())
        copied = []
        monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
        await pilot.press("y")
        assert copied == ['{"big":"report"}']
    assert (tmp_path / "hookinspect-1-body.json").read_bytes() == b'{"big":"report"}'


async def test_number_keys_switch_tabs_and_a_successful_answer_is_shown_whole(store_path, workspace, target):
    target.headers = {"Content-Type": "application/json", "X-Answer": "yes"}
    seed(store_path, make_delivery(b'{"a":1}'))
    app = HookinspectApp(workspace, target=target.url + "/in")
    async with app.run_test(size=(120, 40)) as pilot:
        await listed(pilot)
        await pilot.press("3")
        assert app.query_one("#detail TabbedContent", TabbedContent).active == "tab-signature"
        await pilot.press("r", "2")
        assert app.query_one("#detail TabbedContent", TabbedContent).active == "tab-attempts"
        await shows(pilot, app, "#attempts", "HTTP/1.1 200", "X-Answer", '"received": true')


async def test_a_json_filter_over_a_big_store_fills_in_while_the_list_answers(store_path, workspace):
    seed_many(store_path, 3000)
    app = HookinspectApp(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await listed(pilot)
        await pilot.press("slash")
        app.query_one("#filter", Input).value = "$.n>=2990"
        await pilot.press("enter", "j", "k")  # the list takes keys while the scan reads bodies
        table = app.query_one(DeliveryList)
        await ui_until(pilot, lambda: table.index.complete, timeout=20)
        assert table.seqs == list(range(3000, 2990, -1))
        await ui_until(pilot, lambda: "filter $.n>=2990 10 match" in rendered(app, "#status"))
        assert table.border_subtitle == "row 1 of 10"


async def test_r_then_a_url_typed_without_pause_replays_every_time(store_path, workspace, target):
    seed(store_path, make_delivery())
    app = HookinspectApp(workspace)
    url = target.url + "/in"
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await listed(pilot)
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs == [1])
        for n in range(20):
            # All at once, as a terminal delivers fast typing: no key waits for the one before.
            for char in ["R", *url, "\r"]:
                key = "enter" if char == "\r" else _character_to_key(char)
                event = events.Key(key, None if char == "\r" else char)
                event.set_sender(app)
                app._driver.send_message(event)  # as Pilot sends keys, without waiting in between
            await ui_until(pilot, lambda n=n: len(target.received) == n + 1, timeout=15)
    assert len(target.received) == 20 and {r["path_qs"] for r in target.received} == {"/in"}


async def test_a_filter_typed_right_after_slash_is_applied(store_path, workspace):
    seed(store_path, make_delivery(method="PUT", path="/a"), make_delivery(path="/b"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs == [2, 1])
        for char in ["/", *"method:PUT", "\r"]:
            key = "enter" if char == "\r" else _character_to_key(char)
            event = events.Key(key, None if char == "\r" else char)
            event.set_sender(app)
            app._driver.send_message(event)
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs == [1], timeout=10)


async def test_the_marker_names_the_row_and_the_count_follows_a_delete(store_path, workspace):
    seed(store_path, make_delivery(path="/a"), make_delivery(path="/b"), make_delivery(path="/c"))
    app = HookinspectApp(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await listed(pilot)
        await ui_until(pilot, lambda: app.query_one(DeliveryList).seqs == [3, 2, 1])
        await pilot.press("down", "down")
        await ui_until(pilot, lambda: str(app.query_one(DeliveryList).border_subtitle) == "row 3 of 3")
        assert "3 deliveries" in rendered(app, "#status")
        await pilot.press("delete", "y")
        await ui_until(pilot, lambda: "2 deliveries" in rendered(app, "#status"))
        await pilot.press("u")
        await ui_until(pilot, lambda: "3 deliveries" in rendered(app, "#status"))


async def test_the_ui_thread_never_reads_the_store(store_path, workspace, target, tmp_path, monkeypatch):
    # Every statement any connection runs is traced with the thread that ran it: listing,
    # arrivals, rows scrolled into view, a filter, a replay, an export, a delete and its count
    # all read in workers, so a slow store (a big body, a JSON filter, a busy disk) never
    # freezes the keys.
    import threading

    monkeypatch.chdir(tmp_path)
    seed(store_path, *(make_delivery(f'{{"n":{i}}}'.encode(), path=f"/hook/{i}") for i in range(300)))
    on_ui_thread: list[str] = []

    def trace(connection):
        connection.set_trace_callback(
            lambda sql: on_ui_thread.append(sql) if threading.current_thread() is threading.main_thread() else None)

    opened = Store.__init__

    def traced_open(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        trace(self._conn)

    monkeypatch.setattr(Store, "__init__", traced_open)
    trace(workspace.store._conn)
    app = HookinspectApp(workspace, target=target.url + "/in")
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await listed(pilot)
        table = app.query_one(DeliveryList)
        await pilot.press("G")  # the oldest: rows read as they come into view
        await ui_until(pilot, lambda: table.current_seq == 1 and "/hook/0" in rendered(app, "#request"))
        await asyncio.to_thread(seed, store_path, make_delivery(path="/arrived"))  # another writer
        await ui_until(pilot, lambda: 301 in table.seqs)
        await pilot.press("g", "r")
        await ui_until(pilot, lambda: len(target.received) == 1)
        await pilot.press("x")
        app.screen.query_one(Input).value = "one.har"
        await pilot.press("enter")
        await ui_until(pilot, lambda: (tmp_path / "one.har").exists())
        await pilot.press("delete", "y")
        await ui_until(pilot, lambda: 301 not in table.seqs)
        await pilot.press("slash", *"/hook/1", "enter")
        await ui_until(pilot, lambda: app.is_listed and table.seqs and all(s in range(2, 201) for s in table.seqs))
    assert on_ui_thread == []
