"""The web inspector in a real headless Chromium (Debian's package) driven by Playwright, over
`listen --web` running as a user runs it, a real store and a real loopback target."""

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hookinspect.store.sqlite import Store
from tests.factories import (
    free_port,
    make_delivery,
    start_listen,
    stop_process,
    wait_until,
    wait_until_up,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
expect = playwright.expect
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium; .ci/run installs it)")

SCREENSHOTS = Path(__file__).parent / "screenshots"  # ignored by git: looked at, not kept
HOSTILE = (b'<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
           b'<a href="javascript:window.__pwned=3">click</a> \x1b[31mred\x1b[0m [bold]markup[/bold]')


class Target:
    """A loopback HTTP server that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def inspector(tmp_path):
    """`listen --web` over a store holding three deliveries, one of them hostile."""
    store = tmp_path / "store.db"
    paid = [make_delivery(b'{"type":"invoice.paid","amount":%d}' % amount, path="/stripe/webhook") for amount in (100, 250)]
    for delivery in paid:
        delivery.provider, delivery.event_type = "stripe", "invoice.paid"
    with Store(store) as s:
        s.insert_delivery(paid[0])
        s.insert_delivery(make_delivery(HOSTILE, content_type="text/html", path="/evil/<img src=x onerror=alert(1)>"))
        s.insert_delivery(paid[1])
    web_port = free_port()
    proc, listen_url = start_listen(store, "--web", "--web-port", str(web_port))
    web_url = f"http://127.0.0.1:{web_port}"
    target = Target()
    try:
        wait_until_up(web_url, proc)
        yield listen_url, web_url, target
    finally:
        target.close()
        stop_process(proc)


@pytest.fixture
def page():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.dialogs = []
        page.errors = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def rows(page):
    return page.locator("#list tbody tr")


def test_the_list_fills_follows_live_captures_filters_and_deep_links(inspector, page):
    listen_url, web_url, _target = inspector
    page.goto(web_url)
    expect(rows(page)).to_have_count(3)
    assert rows(page).first.get_attribute("data-seq") == "3"
    # A capture by the running listen appears without a reload, and is followed.
    httpx.post(listen_url + "/live/1", content=b'{"live": true}', headers={"Content-Type": "application/json"})
    page.wait_for_selector('#list td.c-path:has-text("/live/1")')
    expect(page.locator("#view")).to_contain_text("/live/1")
    # The filter narrows; a bad one says why under the box.
    page.fill("#filter", "path:/stripe/*")
    page.press("#filter", "Enter")
    expect(rows(page)).to_have_count(2)
    page.fill("#filter", "provder:stripe")
    page.press("#filter", "Enter")
    expect(page.locator("#filter-error")).to_contain_text("did you mean 'provider'?")
    # A deep link survives a reload.
    page.goto(web_url + "/deliveries/1")
    expect(page.locator("#view")).to_contain_text("#1  POST")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "list-desktop.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "list-narrow.png"))
    assert page.errors == [] and page.dialogs == []


def test_a_hostile_delivery_renders_as_text_and_no_script_runs(inspector, page):
    _listen_url, web_url, _target = inspector
    page.goto(web_url + "/deliveries/2")
    expect(page.locator("#view")).to_contain_text("window.__pwned = 1")
    view = page.text_content("#view")
    assert "<script>window.__pwned = 1</script>" in view and "\\x1b[31m" in view and "[bold]markup[/bold]" in view
    assert page.locator("#view script, #view img, #view a, #list img").count() == 0
    assert page.text_content('#list tr[data-seq="2"] td.c-path') == "/evil/<img src=x onerror=alert(1)>"
    page.click('#list tr[data-seq="2"]')
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(SCREENSHOTS / "hostile-desktop.png"))
    assert page.errors == [] and page.dialogs == []


def test_replay_and_edit_and_replay_reach_a_real_target(inspector, page):
    _listen_url, web_url, target = inspector
    page.goto(web_url + "/deliveries/3")
    expect(page.locator("#view")).to_contain_text("#3  POST")
    page.keyboard.press("e")
    page.fill("#edit-target", target.url + "/hooks")
    page.fill("#edit-body", '{"type":"invoice.paid","amount":999}')
    page.click('#editor button[type="submit"]')
    wait_until(lambda: target.received, 10, "the edited send")
    assert json.loads(target.received[0]) == {"type": "invoice.paid", "amount": 999}
    expect(page.locator("#view")).to_contain_text("HTTP/1.1 200 OK")  # the Attempts tab, with the answer
    page.keyboard.press("r")  # plain replay: to where it last went
    wait_until(lambda: len(target.received) == 2, 10, "the replay")
    assert json.loads(target.received[1]) == {"type": "invoice.paid", "amount": 250}  # the stored body, unchanged
    page.keyboard.press("d")
    expect(page.locator("#view")).to_contain_text("100 → 250")
    page.screenshot(path=str(SCREENSHOTS / "diff-desktop.png"))
    assert page.errors == []


def test_a_relay_channel_page_shows_its_events_live_and_inert(tmp_path, page):
    import subprocess

    from tests.factories import hookinspect_cmd

    port = free_port()
    relay = subprocess.Popen(hookinspect_cmd("relay", "--port", str(port), "--data", str(tmp_path / "relay")),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, relay)
        made = httpx.post(base + "/api/channels", json={"public": False}).json()
        httpx.post(made["url"] + "/before", content=b'{"earlier": true}', headers={"Content-Type": "application/json"})
        page.goto(made["url"] + "#token=" + made["token"])
        expect(page.locator("#status")).to_have_text("live")
        expect(page.locator("#events li")).to_have_count(1)  # the recent ones first
        httpx.post(made["url"] + "/hooks", content=HOSTILE, headers={"Content-Type": "text/html"})
        expect(page.locator("#events li")).to_have_count(2)
        expect(page.locator("#events li").first).to_contain_text("<script>window.__pwned = 1</script>")
        expect(page.locator("#events li").first).to_contain_text("\\x1b[31mred")  # the ESC byte made visible
        assert page.locator("#events script, #events img, #events a").count() == 0
        assert page.evaluate("window.__pwned") is None
        page.screenshot(path=str(SCREENSHOTS / "relay-channel.png"))
        # Without the token a sealed channel shows nothing of its events.
        page.goto(made["url"])
        expect(page.locator("#status")).to_contain_text("needs its token")
        assert page.locator("#events li").count() == 0
        assert page.errors == [] and page.dialogs == []
    finally:
        stop_process(relay)


SNAPSHOTS = Path(__file__).parent / "snapshots"  # kept: what the page looks like at each size


@pytest.mark.parametrize("width, height", [(1280, 800), (1920, 1080)])
def test_the_page_reads_well_at_laptop_and_desktop_sizes(inspector, page, width, height):
    listen_url, web_url, _target = inspector
    httpx.post(listen_url + "/a/much/longer/path/than/the/column/has/room/for/" + "x" * 80,
               content=b'{"type":"customer.subscription.trial_will_end"}', headers={"Content-Type": "application/json"})
    page.set_viewport_size({"width": width, "height": height})
    # A deep link shows that it is loading (its answer held back until that is seen), then the delivery.
    held = []

    def hold(route):  # noqa: ANN001 - playwright's Route
        held.append(route)

    page.route("**/api/deliveries/1", hold)
    page.goto(web_url + "/deliveries/1")
    expect(page.locator("#view.loading")).to_contain_text("Loading #1")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:  # each call lets playwright run the route handler
        page.evaluate("1")
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/api/deliveries/1")
    expect(page.locator("#view")).to_contain_text("#1  POST")
    expect(page.locator("#view.loading")).to_have_count(0)
    expect(rows(page)).to_have_count(4)
    # No sideways scroll in the list: long paths and events are cut with "…".
    pane = page.locator("#list-pane")
    assert pane.evaluate("el => el.scrollWidth <= el.clientWidth"), "the list scrolls sideways"
    right = pane.bounding_box()["x"] + pane.bounding_box()["width"]
    for name in ("size", "last"):  # the last columns were behind a horizontal scrollbar
        header = page.locator("#list th").filter(has_text=name).first.bounding_box()
        assert header["x"] + header["width"] <= right + 1, name
    # Every action is on screen, and the three downloads stand together, apart from Delete.
    for button in page.locator("#actions button").all():
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height
    assert page.locator("#actions .group button").count() == 3
    # The received line of the detail is whole (it wraps instead of being cut).
    view = page.locator("#view")
    assert view.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    SNAPSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SNAPSHOTS / f"inspector-{width}x{height}.png"))
    # The split can be dragged, and the list follows.
    before = pane.bounding_box()["width"]
    bar = page.locator("#splitter").bounding_box()
    page.mouse.move(bar["x"] + 2, bar["y"] + 100)
    page.mouse.down()
    page.mouse.move(bar["x"] - width * 0.15, bar["y"] + 100, steps=5)
    page.mouse.up()
    assert pane.bounding_box()["width"] < before - width * 0.1
    assert page.errors == [] and page.dialogs == []
