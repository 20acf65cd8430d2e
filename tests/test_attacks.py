"""Attacks on the person running hookinspect, each against real servers on loopback and each
with its own deadline: a page that rebinds its name, a pattern that backtracks, a file that
chooses a target, files others could read, links to an owned store, hostile fixture names,
broken settings files, and requests that must be kept byte for byte.

The deadlines are generous (a busy machine passes them); what they catch is a hang: the
backtracking pattern below ran for minutes before the one matcher, over 26 characters.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from hookinspect.intake.receiver import start_server
from hookinspect.model import ExportItem
from hookinspect.relay.server import RelaySettings, create_relay_app
from hookinspect.relay.storage import SqliteRelayStorage
from hookinspect.store.sqlite import Store
from hookinspect.web.server import WebSettings, create_web_app
from tests.factories import (
    RecordingTarget,
    free_port,
    hookinspect_cmd,
    make_attempt,
    make_delivery,
    seed,
    start_listen,
    stop_process,
    wait_until,
)

# The (a+)+ family: each backtracks exponentially in Python's re on a run of a's not followed by a match.
BACKTRACKING = ["$.a~(a+)+$", "$.a~(a|aa)+$", "$.a~(a*)*b$", "$.a~(a|a?)+c"]
HOSTILE_BODY = json.dumps({"a": "a" * 10_000 + "!"}).encode()  # 10 KB, the match fails at the very end
SECRET = "whsec_" + "c2VjcmV0LWZvci1hdHRhY2stdGVzdHM="
RAW_CONTROLS = {chr(c) for c in range(0x20) if chr(c) not in "\n\t"} | {chr(c) for c in range(0x7F, 0xA0)}


def raw_controls(text: str) -> set[str]:
    return {c for c in text if c in RAW_CONTROLS}


def run(*args: str, cwd: Path | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A hookinspect command as a user runs it; the deadline fails the test instead of hanging it."""
    return subprocess.run(hookinspect_cmd(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
async def web(store_path):
    seed(store_path, make_delivery(HOSTILE_BODY, headers=[("Authorization", "Bearer sk_live_secret")]))
    from hookinspect.workspace import Workspace
    with Workspace(store_path) as workspace:
        runner, urls = await start_server(create_web_app(workspace, WebSettings()), "127.0.0.1", 0)
        try:
            yield urls[0]
        finally:
            await runner.cleanup()


# -- DNS rebinding and cross-site requests --------------------------------------------------

async def test_a_rebound_name_reads_nothing_from_the_web_inspector(web):
    port = web.rsplit(":", 1)[1]
    async with httpx.AsyncClient(timeout=10) as client:
        for path in ("/api/deliveries/1", "/api/deliveries", "/", "/api/export?seqs=1&format=json", "/api/events"):
            answer = await client.get(web + path, headers={"Host": f"evil.example:{port}"})
            assert answer.status_code == 421, path
            assert b"sk_live_secret" not in answer.content and b"csrf" not in answer.content.lower()
            assert b"payment_intent" not in answer.content and b"aaaa" not in answer.content
        # The names it was told to answer still work.
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
            assert (await client.get(web + "/api/deliveries/1", headers={"Host": host})).status_code == 200


async def test_another_site_cannot_use_the_api_but_may_link_to_the_page(web):
    async with httpx.AsyncClient(timeout=10) as client:
        cross = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
        assert (await client.get(web + "/api/deliveries?filter=x", headers=cross)).status_code == 403
        assert (await client.get(web + "/api/deliveries/1", headers={"Origin": "https://evil.example"})).status_code == 403
        link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
        assert (await client.get(web + "/", headers=link)).status_code == 200
        own = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
        assert (await client.get(web + "/api/deliveries/1", headers=own)).status_code == 200


async def test_a_rebound_name_reads_nothing_from_a_loopback_relay(tmp_path):
    storage = SqliteRelayStorage(tmp_path / "relay")
    runner, urls = await start_server(create_relay_app(storage, RelaySettings()), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            channel = (await client.post(urls[0] + "/api/channels", json={"public": True})).json()
            assert (await client.post(channel["url"], content=b'{"secret":"s3"}')).status_code == 200
            evil = {"Host": "evil.example"}
            for path in (f"/{channel['id']}", "/api/channels", "/new"):
                answer = await client.get(urls[0] + path, headers=evil)
                assert answer.status_code == 421 and b"s3" not in answer.content, path
            cross = {"Sec-Fetch-Site": "cross-site"}
            assert (await client.post(urls[0] + "/api/channels", json={"public": True}, headers=cross)).status_code == 403
    finally:
        await runner.cleanup()
        storage.close()


# -- patterns that backtrack -----------------------------------------------------------------

@pytest.mark.parametrize("pattern", BACKTRACKING)
def test_ls_runs_a_backtracking_pattern_in_linear_time(store_path, pattern):
    seed(store_path, *(make_delivery(HOSTILE_BODY) for _ in range(5)))
    result = run("ls", "--filter", pattern, "--store", str(store_path), timeout=20)
    assert result.returncode == 0 and "no deliveries match" in result.stdout + result.stderr


def test_a_pattern_that_cannot_run_in_linear_time_is_one_line(store_path):
    seed(store_path, make_delivery(HOSTILE_BODY))
    for pattern, construct in (("'$.a~(a)\\1'", "backreference"), ("$.a~a(?=b)", "lookahead"),
                               ("$.a~(?<=a)b", "lookbehind"), ("$.a~a++", "possessive")):
        result = run("ls", "--filter", pattern, "--store", str(store_path))
        assert result.returncode == 2 and construct in result.stderr and result.stderr.count("\n") == 1, result.stderr


async def test_the_web_list_answers_a_backtracking_filter_and_the_page_stays_quick(web):
    async with httpx.AsyncClient(timeout=10) as client:
        for pattern in BACKTRACKING:
            scan = asyncio.ensure_future(client.get(web + "/api/deliveries", params={"filter": pattern}))
            started = time.monotonic()
            page = await client.get(web + "/")
            page_seconds = time.monotonic() - started
            answer = await asyncio.wait_for(scan, 10)
            assert answer.status_code == 200 and answer.json()["rows"] == []
            assert page.status_code == 200, page_seconds
        refused = await client.get(web + "/api/deliveries", params={"filter": "'$.a~(a)\\1'"})
        assert refused.status_code == 400 and "backreference" in refused.json()["error"]


async def test_the_tui_filter_runs_a_backtracking_pattern(store_path):
    from textual.widgets import Input

    from hookinspect.tui.app import HookinspectApp
    from hookinspect.workspace import Workspace
    from tests.tui.test_app import listed, rendered, ui_until

    seed(store_path, *(make_delivery(HOSTILE_BODY) for _ in range(20)))
    with Workspace(store_path) as workspace:
        app = HookinspectApp(workspace)
        async with app.run_test(size=(140, 40)) as pilot:
            await listed(pilot)
            await pilot.press("slash")
            box = app.query_one("#filter", Input)
            box.value = BACKTRACKING[0]
            await pilot.press("enter")
            try:
                await ui_until(pilot, lambda: "0 match" in rendered(app, "#status"), timeout=20)
            except AssertionError:
                raise AssertionError(rendered(app, "#status")) from None


async def test_a_relay_claim_with_a_backtracking_pattern_costs_no_time(tmp_path):
    from hookinspect.relay.claims import parse_claim

    claim = parse_claim(BACKTRACKING[0])
    storage = SqliteRelayStorage(tmp_path / "relay")
    runner, urls = await start_server(create_relay_app(storage, RelaySettings()), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            channel = (await client.post(urls[0] + "/api/channels", json={})).json()
            asked = {"subscriber": "mallory", "claim": BACKTRACKING[0]}
            async with client.stream("GET", channel["url"], params=asked, headers={"Accept": "text/event-stream",
                                                                "Authorization": f"Bearer {channel['token']}"}) as stream:
                assert stream.status_code == 200
                for _ in range(3):
                    sent = await client.post(channel["url"], content=HOSTILE_BODY,
                                             headers={"Content-Type": "application/json"})
                    assert sent.status_code == 200
                assert (await client.get(urls[0] + "/healthz")).status_code == 200
    finally:
        await runner.cleanup()
        storage.close()
    assert not claim.matches(make_delivery(HOSTILE_BODY))  # the same matcher the relay ran


# -- an imported file does not choose where your secrets sign --------------------------------

async def test_an_imported_har_cannot_aim_a_signed_replay(tmp_path, store_path):
    stranger = await RecordingTarget().start()
    try:
        body = b'{"id":"evt_1","type":"payment_intent.succeeded"}'
        delivery = make_delivery(body, headers=[("Stripe-Signature", "t=1,v1=00")])
        attempt = make_attempt(0, 500, target=stranger.url + "/collect")
        from hookinspect.formats.export import export
        har, _ = export([ExportItem(delivery, [attempt])], "har", redact_secrets=False)
        evil = tmp_path / "evil.har"
        evil.write_text(har if isinstance(har, str) else har.decode())
        assert run("import", str(evil), "--store", str(store_path)).returncode == 0
        refused = await asyncio.to_thread(run, "replay", "--failed", "--secret", f"stripe={SECRET}",
                                          "--store", str(store_path))
        assert refused.returncode == 2 and "imported file" in refused.stderr and refused.stderr.count("\n") <= 2
        assert stranger.received == []
        # Named by the user, it is the user's choice.
        chosen = await asyncio.to_thread(run, "replay", "1", "--to", stranger.url + "/mine", "--store", str(store_path))
        assert chosen.returncode in (0, 1) and [r["path_qs"] for r in stranger.received] == ["/mine"]
    finally:
        await stranger.stop()


# -- files others could read ------------------------------------------------------------------

def readable_by_others(root: Path) -> list[str]:
    return [str(path) for path in [root, *root.rglob("*")] if path.stat().st_mode & 0o077]


async def test_every_writer_makes_files_only_their_owner_can_read(tmp_path, target):
    old = os.umask(0o022)  # the usual umask: files 0644 and directories 0755 unless told otherwise
    try:
        private = tmp_path / "private"
        store = private / "store" / "s.db"
        store.parent.mkdir(mode=0o700, parents=True)  # the user's own: `listen` does not create --store's directory
        os.chmod(private, 0o700)
        proc, url = start_listen(store, cwd=tmp_path)
        try:
            assert httpx.post(url + "/hooks", content=b'{"a":1}', timeout=10).status_code == 200
        finally:
            stop_process(proc)
        for args in (["export", "1", "--format", "json", "-o", str(private / "out" / "one.json"), "--no-redact"],
                     ["export", "1", "--format", "har", "-o", str(private / "store")],
                     ["export", "1", "--format", "fixture", "-o", str(private / "fixture.json")]):
            assert run(*args, "--store", str(store)).returncode == 0, args
        existing = private / "was-public.json"
        existing.write_text("{}")
        os.chmod(existing, 0o644)
        assert run("export", "1", "--format", "json", "-o", str(existing), "--store", str(store)).returncode == 0
        junit = private / "reports" / "junit.xml"
        result = await asyncio.to_thread(run, "check", str(private / "fixture.json"), "--target", target.url,
                                         "--junit", str(junit))
        assert junit.exists(), result.stderr
        relay = SqliteRelayStorage(private / "relay-data")
        relay.close()
        from hookinspect.relay.sealing import save_private_key
        save_private_key(private / "keys" / "c.key", b"k" * 32)
        from hookinspect.private_files import write_private
        write_private(private / "body.bin", b"saved body")  # the TUI's "save body"
    finally:
        os.umask(old)
    assert readable_by_others(private / "store") == [] and readable_by_others(private / "relay-data") == []
    written = [p for p in private.rglob("*") if p.is_file()]
    assert len(written) >= 10
    assert [str(p) for p in written if p.stat().st_mode & 0o077] == []
    assert [str(p) for p in private.rglob("*") if p.is_dir() and p.stat().st_mode & 0o077] == []


# -- one owner per store, whatever the path ---------------------------------------------------

@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_link_to_an_owned_store_is_refused(tmp_path, link):
    store = tmp_path / "s.db"
    proc, _ = start_listen(store)
    try:
        other = tmp_path / "elsewhere" / "l.db"
        other.parent.mkdir()
        (os.symlink if link == "symlink" else os.link)(store, other)
        second = run("listen", "--port", str(free_port()), "--store", str(other), timeout=30)
        assert second.returncode == 3 and "in use by another" in second.stderr and second.stderr.count("\n") == 1
    finally:
        stop_process(proc)


# -- hostile fixture names through check ------------------------------------------------------

async def test_check_prints_hostile_fixture_names_escaped_and_writes_junit_that_parses(tmp_path, target):
    name = "\u001b]0;pwned\u0007 x \u001b]8;;http://evil\u001b\\link\u001b]8;;\u001b\\ \u001b[31m\u001b[6n\u0085"
    fixture = {"meta": {"1": {"format": "hookinspect-fixture", "version": 1}},
               "deliveries": {"1": {"name": name, "request": {"method": "POST", "path": "/h", "query": "",
                                                              "headers": [["Content-Type", "application/json"]],
                                                              "body_text": "{}"},
                                    "expect": {"status": 299}}}}
    path = tmp_path / "hostile\u001b[2J.json"
    path.write_text(json.dumps(fixture))
    target.body = "\u001b]0;answer\u0007".encode()
    junit = tmp_path / "junit.xml"
    for extra in ([], ["--json"]):
        result = await asyncio.to_thread(run, "check", str(path), "--target", target.url, "--junit", str(junit), *extra)
        assert result.returncode == 1, result.stderr
        assert raw_controls(result.stdout) == set() and raw_controls(result.stderr) == set()
    case = ET.parse(junit).getroot().find("testsuite/testcase")
    assert case is not None and "\\x1b]0;pwned" in case.get("name")


# -- broken settings files --------------------------------------------------------------------

@pytest.mark.parametrize("content, said", [
    (b"port = \"\xff\xfe\"\n", "not UTF-8"),
    (b"x = " + b"[" * 2000 + b"]" * 2000 + b"\n", "too deeply"),
    (b"port = 1.5\n", "port must be a whole number 0–65535"),
    (b"max_connections = 1\n", "max-connections must be a whole number 16"),
    (b"read_timeout = nan\n", "read-timeout must be a number of seconds"),
    (b"durability = 5\n", "durability must be one of power, process"),
    (b"port = [\n", "hookinspect.toml"),
], ids=["not-utf8", "nested", "port-float", "max-connections", "nan", "durability", "not-toml"])
def test_a_broken_settings_file_is_one_line_and_exit_2(tmp_path, content, said):
    (tmp_path / "hookinspect.toml").write_bytes(content)
    result = run("listen", "--store", str(tmp_path / "s.db"), cwd=tmp_path)
    assert result.returncode == 2 and said in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s.db").exists()


# -- passwords in URLs -------------------------------------------------------------------------

async def test_a_password_in_a_target_is_never_printed(store_path, target):
    seed(store_path, make_delivery())
    with_password = target.url.replace("http://", "http://ana:hunter2@") + "/in"
    for args in (["replay", "1", "--to", with_password], ["attempts", "1"], ["attempts", "1", "--json"],
                 ["replay", "1", "--to", with_password, "--json"]):
        result = await asyncio.to_thread(run, *args, "--store", str(store_path))
        assert result.returncode == 0 and "hunter2" not in result.stdout + result.stderr, args
        assert "ana:***@" in result.stdout, args


# -- byte for byte -----------------------------------------------------------------------------

def raw_request(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        return sock.recv(4096)


def test_any_token_method_and_an_absolute_form_target_are_kept_as_sent(store_path):
    proc, url = start_listen(store_path)
    try:
        for method in ("FOO", "Foo", "post", "M-SEARCH"):
            answer = raw_request(url, f"{method} /m HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".encode())
            assert answer.startswith(b"HTTP/1.1 200"), (method, answer)
        assert raw_request(url, b"POST http://h:1/abs?q=1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\n\r\nhi"
                           ).startswith(b"HTTP/1.1 200")
        # A body announced over the limit is refused before it is invited.
        answer = raw_request(url, b"POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                  b"Content-Length: 999999999\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer
    finally:
        stop_process(proc)
    with Store(store_path) as store:
        assert [store.get(seq).method for seq in sorted(store.seqs())] == ["FOO", "Foo", "post", "M-SEARCH", "POST"]
        assert store.get(5).target == "http://h:1/abs?q=1"
    curl = run("export", "5", "--format", "curl", "--store", str(store_path))
    assert "'http://h:1/abs?q=1'" in curl.stdout and "127.0.0.1" not in curl.stdout


async def test_a_200_kb_curl_export_runs_and_sends_the_body_byte_for_byte(store_path, target, tmp_path):
    for number, body in enumerate((("é" * 100_000).encode(), os.urandom(200_000)), start=1):
        seed(store_path, make_delivery(body, content_type="application/octet-stream"))
        script = run("export", str(number), "--format", "curl", "--to", target.url, "--store", str(store_path)).stdout
        assert raw_controls(script) == set()
        (tmp_path / "replay.sh").write_text(script)
        sent = await asyncio.to_thread(subprocess.run, ["bash", str(tmp_path / "replay.sh")], capture_output=True,
                                       timeout=30)
        assert sent.returncode == 0, sent.stderr
        assert target.received[-1]["body"] == body and len(body) >= 200_000


def test_the_files_a_test_made_here_are_private_to_the_file_helper(tmp_path):
    from hookinspect.private_files import is_private, write_private

    target = tmp_path / "x" / "y.txt"
    write_private(target, b"1")
    assert is_private(target) and is_private(target.parent) and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_trailer_fields_are_stored_shown_and_exported(store_path):
    proc, url = start_listen(store_path)
    try:
        request = (b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Signature\r\n\r\n"
                   b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Signature: sha256=abc\r\nx-sig: second\r\n\r\n")
        assert raw_request(url, request).startswith(b"HTTP/1.1 200")
    finally:
        stop_process(proc)
    with Store(store_path) as store:
        delivery = store.get(1)
    assert delivery.body == b"hello world"
    assert delivery.trailers.pairs() == [("X-Signature", "sha256=abc"), ("x-sig", "second")]
    assert "Trailers" in run("show", "1", "--store", str(store_path)).stdout
    raw = subprocess.run(hookinspect_cmd("export", "1", "--format", "raw", "--store", str(store_path)),
                         capture_output=True, timeout=30).stdout
    assert raw.endswith(b"0\r\nX-Signature: sha256=abc\r\nx-sig: second\r\n\r\n")
    exported = json.loads(run("export", "1", "--format", "json", "--no-redact", "--store", str(store_path)).stdout)
    assert exported[0]["trailers"] == [["X-Signature", "sha256=abc"], ["x-sig", "second"]]
    masked = run("export", "1", "--format", "har", "--store", str(store_path)).stdout
    assert "sha256=abc" not in masked  # a signature sent as a trailer is masked like the header


def test_sigterm_ends_the_web_inspector_while_it_scans(store_path):
    import threading

    with Store(store_path) as store, store.transaction():
        store.insert_deliveries([make_delivery(HOSTILE_BODY) for _ in range(3000)])
    port = free_port()
    web = subprocess.Popen(hookinspect_cmd("web", "--port", str(port), "--store", str(store_path)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 15, "the web inspector answering")
        answers: list[int] = []

        def scan() -> None:
            for pattern in ("nothing-like-this-anywhere", *BACKTRACKING):
                try:
                    answers.append(httpx.get(f"http://127.0.0.1:{port}/api/deliveries", params={"filter": pattern},
                                             timeout=30).status_code)
                except httpx.HTTPError:
                    return

        scanning = threading.Thread(target=scan, daemon=True)
        scanning.start()
        wait_until(lambda: answers, 15, "the first scan answered")  # the next ones are under way
        web.terminate()
        web.wait(timeout=5)  # the deadline: the bound is 2 s, a loaded machine gets more
        assert all(status in (200, 400) for status in answers)
        scanning.join(10)
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
        web.stderr.close()
