"""The web inspector's JSON endpoints over real HTTP on loopback and a real store, bad input
included: a clear 4xx and nothing changed."""

import asyncio
import json
import re

import httpx
import pytest

from hookinspect.intake.receiver import start_server
from hookinspect.recorder import Recorder
from hookinspect.store.sqlite import Store
from hookinspect.web.server import WebSettings, create_web_app
from tests.factories import await_until, fill_disk, make_delivery, seed


@pytest.fixture
async def web(workspace):
    """The inspector on a free loopback port: (client, csrf token, settings)."""
    settings = WebSettings()
    runner, urls = await start_server(create_web_app(workspace, settings), "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=urls[0], timeout=10) as client:
        yield client, settings
    await runner.cleanup()


def csrf(settings):
    return {"X-CSRF-Token": settings.csrf_token}


async def test_the_page_carries_a_strict_csp_and_its_csrf_token_in_a_meta_tag(web):
    client, settings = web
    page = await client.get("/deliveries/7")  # a deep link serves the same page
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "default-src 'none'" in csp
    assert f'<meta name="csrf-token" content="{settings.csrf_token}">' in page.text
    assert "<script>" not in page.text and "onclick" not in page.text  # no inline script at all
    script = await client.get("/static/app.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    assert (await client.get("/static/../server.py")).status_code == 404


async def test_the_list_pages_newest_first_and_a_bad_filter_says_why(web, store_path):
    client, _ = web
    seed(store_path, *(make_delivery(f'{{"n":{i}}}'.encode(), path=f"/p/{i}") for i in range(5)))
    first = (await client.get("/api/deliveries", params={"limit": 2})).json()
    assert [r["seq"] for r in first["rows"]] == [5, 4] and first["more"] and first["total"] == 5
    assert first["rows"][0]["cells"]["path"] == [["/p/4", ""]]
    older = (await client.get("/api/deliveries", params={"limit": 2, "before": 4})).json()
    assert [r["seq"] for r in older["rows"]] == [3, 2]
    narrowed = (await client.get("/api/deliveries", params={"filter": "$.n>=3"})).json()
    assert [r["seq"] for r in narrowed["rows"]] == [5, 4]
    newer = (await client.get("/api/deliveries", params={"after": 2, "limit": 2})).json()
    assert [r["seq"] for r in newer["rows"]] == [4, 3] and newer["more"]  # newest first, a page at a time
    assert newer["total"] is None  # counted with the first page only
    assert [r["seq"] for r in (await client.get("/api/deliveries", params={"after": 4})).json()["rows"]] == [5]
    assert (await client.get("/api/deliveries", params={"after": "x"})).status_code == 400
    bad = await client.get("/api/deliveries", params={"filter": "provder:stripe"})
    assert bad.status_code == 400 and "did you mean 'provider'?" in bad.json()["error"]
    assert (await client.get("/api/deliveries", params={"before": "x"})).status_code == 400


async def test_detail_is_lines_of_spans_and_an_unknown_delivery_is_404(web, store_path):
    client, _ = web
    seed(store_path, make_delivery(b"<script>alert(1)</script>\x1b[2J", content_type="text/plain", path="/h"))
    detail = (await client.get("/api/deliveries/1")).json()
    text = "\n".join("".join(piece[0] for piece in line) for line in detail["request"])
    assert "<script>alert(1)</script>\\x1b[2J" in text  # as text; the escape made visible
    assert (await client.get("/api/deliveries/99")).status_code == 404
    seed(store_path, make_delivery(json.dumps({"items": list(range(300))}).encode()))
    folded = (await client.get("/api/deliveries/2")).json()["request"]
    whole = (await client.get("/api/deliveries/2", params={"all": "1"})).json()["request"]
    assert "more items (folded)" in json.dumps(folded) and "folded" not in json.dumps(whole)
    assert (await client.get("/api/deliveries/abc")).status_code == 404
    huge = "9" * 23  # over SQLite's 64-bit INTEGER: not a delivery, and no 500
    assert (await client.get(f"/api/deliveries/{huge}")).status_code == 404
    for params in ({"before": huge}, {"after": huge}, {"limit": huge}, {"before": "-1"}):
        assert (await client.get("/api/deliveries", params=params)).status_code == 400
    assert (await client.get("/api/diff", params={"b": huge})).status_code == 400
    assert (await client.get("/api/export", params={"seqs": f"1,{huge}"})).status_code == 400


async def test_state_changes_need_the_csrf_token_and_nothing_changes_without_it(web, store_path, target):
    client, settings = web
    seed(store_path, make_delivery(b'{"a":1}'))
    refused = await client.post("/api/deliveries/1/replay", json={"to": target.url + "/in"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert (await client.post("/api/delete", json={"seqs": [1]}, headers={"X-CSRF-Token": "wrong"})).status_code == 403
    assert target.received == []
    with Store(store_path) as store:
        assert store.count() == 1 and store.attempts(1) == []


async def test_replay_and_edit_and_replay_reach_a_real_target(web, store_path, target):
    client, settings = web
    seed(store_path, make_delivery(b'{"a":1}', headers=[("X-Old", "1")]))
    sent = (await client.post("/api/deliveries/1/replay", json={"to": target.url + "/in"}, headers=csrf(settings))).json()
    assert sent["ok"] and sent["outcome"] == "200"
    edited = await client.post("/api/deliveries/1/replay", headers=csrf(settings),
                               json={"headers": [["Content-Type", "application/json"], ["X-New", "yes"]], "body": '{"a":2}'})
    assert edited.json()["target"] == target.url + "/in"  # where it last went
    assert [r["body"] for r in target.received] == [b'{"a":1}', b'{"a":2}']
    names = [k.decode().lower() for k, _ in target.received[1]["headers"]]
    assert "x-new" in names and "x-old" not in names
    with Store(store_path) as store:
        assert store.get(1).body == b'{"a":1}' and len(store.attempts(1)) == 2
    detail = (await client.get("/api/deliveries/1")).json()
    assert detail["attempts"] == 2
    exchange = "\n".join("".join(piece[0] for piece in line) for line in detail["attempts_view"])
    assert f"sent POST {target.url}/in" in exchange and "X-New" in exchange and '"a": 2' in exchange  # what went out
    bad = await client.post("/api/deliveries/1/replay", json={"to": "nope"}, headers=csrf(settings))
    assert bad.status_code == 400 and "not an http(s) URL" in bad.json()["error"]


async def test_delete_hides_at_once_undo_brings_it_back_and_it_leaves_the_store_later(web, store_path, workspace):
    client, settings = web
    seed(store_path, make_delivery(path="/a"), make_delivery(path="/b"))
    deleted = (await client.post("/api/delete", json={"seqs": [2]}, headers=csrf(settings))).json()
    listed = (await client.get("/api/deliveries")).json()
    assert [r["seq"] for r in listed["rows"]] == [1]
    assert (await client.get("/api/hidden")).json() == {"seqs": [2]}
    assert (await client.post(f"/api/undo/{deleted['undo']}", headers=csrf(settings))).json() == {"restored": [2]}
    assert [r["seq"] for r in (await client.get("/api/deliveries")).json()["rows"]] == [2, 1]
    assert (await client.post("/api/undo/nothing", headers=csrf(settings))).status_code == 404
    assert (await client.post("/api/delete", json={"seqs": [99]}, headers=csrf(settings))).status_code == 404
    assert (await client.post("/api/delete", json={"seqs": "x"}, headers=csrf(settings))).status_code == 400
    await client.post("/api/delete", json={"seqs": [1]}, headers=csrf(settings))
    with Store(store_path) as store:
        assert store.count() == 2  # still restorable


async def test_export_masks_secrets_and_diff_compares(web, store_path):
    client, _ = web
    first = make_delivery(b'{"type":"invoice.paid","amount":100}', headers=[("Authorization", "Bearer s3cret")])
    second = make_delivery(b'{"type":"invoice.paid","amount":250}')
    for d in (first, second):
        d.provider, d.event_type = "stripe", "invoice.paid"
    seed(store_path, first, second)
    har = await client.get("/api/export", params={"seqs": "1,2", "format": "har"})
    assert har.status_code == 200 and "attachment" in har.headers["Content-Disposition"]
    assert b"s3cret" not in har.content and len(json.loads(har.content)["log"]["entries"]) == 2
    assert (await client.get("/api/export", params={"seqs": "1", "format": "docx"})).status_code == 400
    lines = (await client.get("/api/diff", params={"b": 2})).json()["lines"]
    text = "\n".join("".join(p[0] for p in line) for line in lines)
    assert "#1 → #2" in text and "100 → 250" in text


async def test_a_capture_is_pushed_to_the_page_as_a_server_sent_event(web, workspace):
    client, _ = web
    events: list[str] = []

    async def listen():
        async with client.stream("GET", "/api/events") as stream:
            async for line in stream.aiter_lines():
                events.append(line)
                if line.startswith("event: deliveries"):
                    return

    reader = asyncio.create_task(listen())
    await await_until(lambda: events, 10, "the stream's first line")
    await Recorder(workspace).record(make_delivery(path="/live"))
    await asyncio.wait_for(reader, 10)
    assert "event: deliveries" in events


async def test_a_non_loopback_bind_needs_the_access_token(workspace):
    settings = WebSettings(access_token="t0ken")
    runner, urls = await start_server(create_web_app(workspace, settings), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=urls[0]) as client:
            refused = await client.get("/api/deliveries")
            assert refused.status_code == 401 and "access token" in refused.json()["error"]
            opened = await client.get("/?token=t0ken")
            assert opened.status_code == 200 and re.search(r"hookinspect_token=t0ken;.*HttpOnly", opened.headers["set-cookie"])
            assert (await client.get("/api/deliveries")).status_code == 200  # the cookie from now on
    finally:
        await runner.cleanup()


async def test_a_delete_for_good_on_a_full_disk_is_one_line_and_the_delivery_stays(small_filesystem, monkeypatch):
    from hookinspect.workspace import Workspace

    store_path = small_filesystem / "store.db"
    said: list[str] = []
    settings = WebSettings(on_error=said.append, undo_seconds=0.05)
    with Workspace(store_path, create=True) as workspace:
        seed(store_path, make_delivery(path="/a"), make_delivery(path="/b"))
        runner, urls = await start_server(create_web_app(workspace, settings), "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=urls[0], timeout=10) as client:
                filler = fill_disk(small_filesystem)  # the delete cannot be written
                await client.post("/api/delete", json={"seqs": [2]}, headers=csrf(settings))
                await await_until(lambda: said)
                assert said == ["deleting #2 failed: the disk holding " + str(store_path) + " is full; nothing more "
                                "can be stored until space is freed; they stay in the store"]
                assert [r["seq"] for r in (await client.get("/api/deliveries")).json()["rows"]] == [2, 1]
                filler.unlink()  # room again: the next delete for good works
                await client.post("/api/delete", json={"seqs": [2]}, headers=csrf(settings))
                await await_until(lambda: workspace.store.count() == 1)
        finally:
            await runner.cleanup()
