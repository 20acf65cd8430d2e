import json

from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.store.sqlite import Store
from tests.factories import make_delivery

runner = CliRunner()


def test_export_har_to_a_file_then_import_into_another_store(tmp_path):
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    with Store(source) as store:
        for i in range(3):
            store.insert_delivery(make_delivery(f'{{"i":{i}}}'.encode(), headers=[("Authorization", "Bearer tok")]))
    har = tmp_path / "out.har"
    result = runner.invoke(app, ["export", "1-3", "--format", "har", "-o", str(har), "--store", str(source)])
    assert result.exit_code == 0, result.output
    assert "masked 3 secret value(s)" in result.stderr and "tok" not in har.read_text()
    assert len(json.loads(har.read_text())["log"]["entries"]) == 3
    first = runner.invoke(app, ["import", str(har), "--store", str(target)])
    again = runner.invoke(app, ["import", str(har), "--store", str(target)])
    assert "imported 3 deliveries" in first.stderr and "skipped 3 already stored" in again.stderr
    rows = json.loads(runner.invoke(app, ["ls", "--json", "--store", str(target)]).stdout)
    assert [r["source"] for r in rows] == ["import"] * 3


def test_import_into_the_store_it_was_exported_from_skips_every_captured_delivery(tmp_path):
    # Captures are stored without a content hash; the first import computes the missing ones.
    store_path = tmp_path / "s.db"
    with Store(store_path) as store:
        store.insert_deliveries([make_delivery(f'{{"i":{i}}}'.encode()) for i in range(3)])
        assert store.execute("SELECT count(*) FROM deliveries WHERE content_hash IS NULL").fetchone()[0] == 3
    out = tmp_path / "out.json"
    assert runner.invoke(app, ["export", "1-3", "--format", "json", "-o", str(out), "--store", str(store_path)]).exit_code == 0
    result = runner.invoke(app, ["import", str(out), "--store", str(store_path)])
    assert result.exit_code == 0 and "skipped 3 already stored" in result.stderr
    with Store(store_path) as store:
        assert store.count() == 3
        assert store.execute("SELECT count(*) FROM deliveries WHERE content_hash IS NULL").fetchone()[0] == 0


def test_export_errors(tmp_path):
    source = tmp_path / "a.db"
    with Store(source) as store:
        store.insert_delivery(make_delivery())
    bad = runner.invoke(app, ["export", "1", "--format", "yaml", "--store", str(source)])
    assert bad.exit_code == 2 and "unknown format" in bad.stderr
    garbage = tmp_path / "x.har"
    garbage.write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["import", str(garbage), "--store", str(source)])
    assert result.exit_code == 2 and "not JSON" in result.stderr and "Traceback" not in result.output


async def test_a_fixture_expects_only_what_every_answer_agreed_on_so_check_passes_against_the_same_backend(
        tmp_path, target):
    import asyncio
    import json
    import subprocess
    import uuid

    from aiohttp import web

    from hookinspect.store.sqlite import Store
    from tests.factories import hookinspect_cmd, make_delivery

    answered = []

    def answer(request, body):  # a backend whose answers carry a new id, a time and a flag that flips
        answered.append(body)
        return web.json_response({"ok": True, "order": "1042", "amended": len(answered) > 1,
                                  "id": str(uuid.uuid4()), "at": f"2026-12-07T12:00:{len(answered):02d}Z"})

    target.handler = answer
    store = tmp_path / "s.db"
    with Store(store) as opened:
        opened.insert_delivery(make_delivery())

    def run(*args):
        return subprocess.run(hookinspect_cmd(*args), capture_output=True, text=True, timeout=60)

    for _ in range(2):  # two answers to learn from
        assert (await asyncio.to_thread(run, "replay", "1", "--to", target.url + "/", "--store", str(store))).returncode == 0
    fixture = tmp_path / "f.json"
    assert (await asyncio.to_thread(run, "export", "1", "--format", "fixture", "--expect-json", "-o", str(fixture),
                                    "--store", str(store))).returncode == 0
    expected = next(iter(json.loads(fixture.read_text())["deliveries"].values()))["expect"]["json"]
    assert expected == {"$.ok": True, "$.order": "1042"}  # the id, the time and the flag changed between answers
    for _ in range(3):
        checked = await asyncio.to_thread(run, "check", str(fixture), "--target", target.url + "/")
        assert checked.returncode == 0, checked.stdout + checked.stderr
