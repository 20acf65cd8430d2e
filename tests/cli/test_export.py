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
