import json

from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.store.sqlite import Store
from tests.factories import make_attempt, make_delivery, seed

runner = CliRunner()


def invoke(*args, store_path=None):
    extra = ["--store", str(store_path)] if store_path else []
    return runner.invoke(app, [*args, *extra])


def test_ls_json_is_newest_first_with_the_documented_fields(store_path):
    seed(store_path, make_delivery(path="/a"), make_delivery(b"x=1", path="/b", query="q=1", content_type="application/x-www-form-urlencoded"))
    result = invoke("ls", "--json", store_path=store_path)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["seq"] for r in rows] == [2, 1]
    for key in ("seq", "id", "received_at", "method", "path", "query", "content_type", "size"):
        assert key in rows[0]
    assert rows[0]["query"] == "q=1" and rows[0]["size"] == 3
    assert result.stderr == ""


def test_ls_filters_and_limit(store_path):
    seed(store_path, *(make_delivery(method="PUT" if i % 2 else "POST", path=f"/p{i}") for i in range(10)))
    rows = json.loads(invoke("ls", "--json", "-m", "put", "-n", "2", store_path=store_path).stdout)
    assert [r["path"] for r in rows] == ["/p9", "/p7"]
    rows = json.loads(invoke("ls", "--json", "--filter", "path:/p1*", store_path=store_path).stdout)
    assert [r["path"] for r in rows] == ["/p1"]


def test_ls_table_shows_rows_and_a_paging_hint(store_path):
    seed(store_path, *(make_delivery(path=f"/row{i}") for i in range(3)))
    result = invoke("ls", "-n", "2", store_path=store_path)
    assert result.exit_code == 0
    assert "/row2" in result.stdout and "/row0" not in result.stdout
    assert "2 of 3 shown" in result.stderr


def test_show_json_has_headers_in_order_and_body(store_path):
    seed(store_path, make_delivery(b'{"a":1}', headers=[("X-Dup", "1"), ("X-Dup", "2")]),
         make_delivery(b"\xff\xfe"))
    data = json.loads(invoke("show", "1", "--json", store_path=store_path).stdout)
    assert data["headers"] == [["Content-Type", "application/json"], ["X-Dup", "1"], ["X-Dup", "2"]]
    assert data["body_text"] == '{"a":1}' and data["attempts"] == []
    binary = json.loads(invoke("show", "2", "--json", store_path=store_path).stdout)
    assert binary["body_base64"] == "//4=" and "body_text" not in binary


def test_show_raw_writes_exact_bytes(store_path):
    seed(store_path, make_delivery(b"\x00\xffraw\x1b[0m"))
    result = runner.invoke(app, ["show", "1", "--raw", "--store", str(store_path)])
    assert result.stdout_bytes == b"\x00\xffraw\x1b[0m"


def test_show_renders_hostile_text_literally(store_path):
    hostile = b"\x1b[31mRED\x1b[0m [bold]not bold[/bold] [link=http://evil]click[/link]"
    seed(store_path, make_delivery(hostile, content_type="text/plain", headers=[("X-Evil", "\x1b]0;pwned\x07")]))
    result = invoke("show", "1", store_path=store_path)
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "[bold]not bold[/bold]" in result.stdout and "[link=http://evil]" in result.stdout
    assert "\\x1b[31mRED" in result.stdout


def test_show_pretty_prints_json_and_form_and_hexdumps_binary(store_path):
    seed(store_path, make_delivery(b'{"nested":{"amount":1200}}'),
         make_delivery(b"name=Ada+L&x=%3D", content_type="application/x-www-form-urlencoded"),
         make_delivery(b"\x89PNG\r\n\x1a\n\x00\x00\x00", content_type="image/png"))
    assert '"amount": 1200' in invoke("show", "1", store_path=store_path).stdout
    form = invoke("show", "2", store_path=store_path).stdout
    assert "Ada L" in form and "=" in form
    assert "89 50 4e 47" in invoke("show", "3", store_path=store_path).stdout


def test_show_includes_the_latest_attempt(store_path):
    seed(store_path, make_delivery())
    with Store(store_path) as store:
        store.add_attempt(make_attempt(1, 502, body=b"bad gateway"))
    out = invoke("show", "1", store_path=store_path).stdout
    assert "Latest attempt" in out and "502" in out and "bad gateway" in out
    attempts = json.loads(invoke("attempts", "1", "--json", store_path=store_path).stdout)
    assert attempts[0]["response"]["status"] == 502


def test_unknown_delivery_is_one_line_on_stderr_with_exit_2(store_path):
    seed(store_path, make_delivery())
    result = invoke("show", "99", store_path=store_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().startswith("error: no delivery #99")
    assert len(result.stderr.strip().splitlines()) == 1


def test_numbers_beyond_the_store_are_unknown_deliveries_not_crashes(store_path):
    seed(store_path, make_delivery())
    huge = "9" * 23  # over SQLite's 64-bit INTEGER
    for args in (["show", huge], ["rm", huge], ["export", huge, "--format", "curl"], ["attempts", huge],
                 ["diff", "1", huge], ["show", "\u0661"]):  # an Arabic-Indic digit one is not #1
        result = invoke(*args, store_path=store_path)
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
        said = "is not a delivery number" if "\u0661" in args else "no delivery"
        assert result.stderr.startswith("error: ") and said in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_limits_and_times_beyond_any_store_mean_all_or_nothing_not_a_crash(store_path):
    seed(store_path, make_delivery(), make_delivery())
    huge = "9" * 23
    for args in (["-n", huge], ["--since", huge + "d"], ["-f", f"since:{huge}h"], ["--since", "9" * 400 + "w"]):
        result = invoke("ls", "--json", *args, store_path=store_path)
        assert result.exit_code == 0, (args, result.output)
        assert [row["seq"] for row in json.loads(result.stdout)] == [2, 1]
    past = invoke("ls", "--offset", huge, store_path=store_path)
    assert past.exit_code == 0 and "nothing past the first 2" in past.stderr
    assert invoke("ls", "--rejected", "-n", huge, "--json", store_path=store_path).exit_code == 0


def test_missing_store_is_a_clear_error_with_exit_3(tmp_path):
    result = invoke("ls", store_path=tmp_path / "nope.db")
    assert result.exit_code == 3 and "no store at" in result.stderr
    assert "Traceback" not in result.output


def test_store_from_environment(store_path):
    seed(store_path, make_delivery(path="/env"))
    result = runner.invoke(app, ["ls", "--json"], env={"HOOKINSPECT_STORE": str(store_path)})
    assert json.loads(result.stdout)[0]["path"] == "/env"


def test_rm_and_clear(store_path):
    seed(store_path, *(make_delivery() for _ in range(5)))
    assert invoke("rm", "2-3", store_path=store_path).exit_code == 0
    assert [r["seq"] for r in json.loads(invoke("ls", "--json", store_path=store_path).stdout)] == [5, 4, 1]
    missing = invoke("rm", "1", "42", store_path=store_path)
    assert missing.exit_code == 2  # nothing deleted when one ref is wrong
    assert len(json.loads(invoke("ls", "--json", store_path=store_path).stdout)) == 3
    refused = invoke("clear", store_path=store_path)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert invoke("clear", "--yes", store_path=store_path).exit_code == 0
    assert json.loads(invoke("ls", "--json", store_path=store_path).stdout) == []


def test_bad_filter_is_a_usage_error(store_path):
    seed(store_path, make_delivery())
    result = invoke("ls", "--filter", "status:9xx", store_path=store_path)
    assert result.exit_code == 2 and "bad status" in result.stderr


def test_show_folds_long_json_arrays(store_path):
    import json as _json

    seed(store_path, make_delivery(_json.dumps({"items": list(range(500))}).encode()))
    out = invoke("show", "1", store_path=store_path).stdout
    # one array element per line; the id and the time above may contain any digits
    elements = [line.strip().rstrip(",") for line in out.splitlines()]
    assert "490 more items (folded)" in out and "9" in elements and "10" not in elements and "499" not in elements
    assert json.loads(invoke("show", "1", "--json", store_path=store_path).stdout)["body_text"].count(",") == 499


def test_ls_rejected_lists_refused_requests_newest_first_with_what_arrived(store_path):
    from hookinspect.model import Rejection

    with Store(store_path) as store:
        store.add_rejection(Rejection(413, "body over 10 bytes", "10.0.0.1", "POST", "/big", b"POST /big HTTP/1.1\r\n",
                                      b"0123456789abc"))
        store.add_rejection(Rejection(431, "Too many headers", "10.0.0.2"))
        store.count_unrecorded(7)
    table = invoke("ls", "--rejected", store_path=store_path)
    assert table.exit_code == 0, table.output
    assert table.stdout.index("10.0.0.2") < table.stdout.index("10.0.0.1")
    flat = " ".join(table.stdout.split())  # cells may fold at the test's terminal width
    assert "POST /big" in flat and "(+7 more after it, only counted)" in flat
    assert "9 refused in all" in table.stderr
    rows = json.loads(invoke("ls", "--rejected", "--json", store_path=store_path).stdout)
    assert [(r["status"], r["remote_addr"]) for r in rows] == [(431, "10.0.0.2"), (413, "10.0.0.1")]
    assert rows[1]["head_text"] == "POST /big HTTP/1.1\r\n" and rows[1]["body_text"] == "0123456789abc"
    mixed = invoke("ls", "--rejected", "--method", "POST", store_path=store_path)
    assert mixed.exit_code == 2 and "only --limit and --json" in mixed.stderr


def test_only_the_newest_rejections_are_kept(store_path):
    from hookinspect.model import Rejection

    with Store(store_path) as store:
        for n in range(30):
            store.add_rejection(Rejection(400, f"bad {n}"), keep=10)
        kept = store.rejections()
    assert [r.reason for r in kept] == [f"bad {n}" for n in range(29, 19, -1)]


def one_line_usage_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2 and "Traceback" not in result.output, result.stderr  # the error, and a hint at most
    for needle in needles:
        assert needle in result.stderr


def test_filters_that_mean_nothing_are_usage_errors_naming_what_is_accepted(store_path):
    seed(store_path, make_delivery())
    one_line_usage_error(invoke("ls", "--filter", "foo:bar", store_path=store_path), "unknown filter key 'foo'", "text:")
    one_line_usage_error(invoke("ls", "--filter", "provder:stripe", store_path=store_path), "did you mean 'provider'?")
    one_line_usage_error(invoke("ls", "--filter", "$.a>>1", store_path=store_path), "bad JSON test")
    one_line_usage_error(invoke("ls", "--verdict", "bogus", store_path=store_path), "unknown verdict 'bogus'", "no-secret")
    one_line_usage_error(invoke("ls", "--filter", "verdict:vaild", store_path=store_path), "did you mean 'valid'?")
    one_line_usage_error(invoke("ls", "--provider", "nosuch", store_path=store_path), "unknown provider 'nosuch'", "hookinspect providers")
    one_line_usage_error(invoke("ls", "--provider", "strpe", store_path=store_path), "did you mean 'stripe'?")
    # The way to look for text with a colon in it still works.
    rows = json.loads(invoke("ls", "--json", "--filter", "text:'foo:bar'", store_path=store_path).stdout)
    assert rows == []


def test_content_type_words_match_the_types_that_carry_them(store_path):
    seed(store_path, make_delivery(content_type="application/json; charset=utf-8"),
         make_delivery(content_type="application/vnd.api+json"), make_delivery(b"a=1", content_type="application/x-www-form-urlencoded"))
    rows = json.loads(invoke("ls", "--json", "--content-type", "json", store_path=store_path).stdout)
    assert [r["seq"] for r in rows] == [2, 1]
    rows = json.loads(invoke("ls", "--json", "--content-type", "application/x-www", store_path=store_path).stdout)
    assert [r["seq"] for r in rows] == [3]


def test_search_finds_text_in_compressed_bodies(store_path):
    import gzip

    seed(store_path, make_delivery(gzip.compress(b'{"resourceType":"DiagnosticReport","status":"final"}'),
                                   headers=[("Content-Encoding", "gzip")]),
         make_delivery(b'{"resourceType":"Patient"}'))
    rows = json.loads(invoke("ls", "--json", "--search", "DiagnosticReport", store_path=store_path).stdout)
    assert [r["seq"] for r in rows] == [1]
    rows = json.loads(invoke("ls", "--json", "--search", "Patient", store_path=store_path).stdout)
    assert [r["seq"] for r in rows] == [2]


def test_an_unknown_key_in_the_settings_file_is_a_usage_error(store_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hookinspect.toml").write_text('prot = 9000\n')
    seed(store_path, make_delivery())
    one_line_usage_error(invoke("replay", "1", store_path=store_path), "hookinspect.toml: unknown key 'prot'",
                         "did you mean 'port'?")
    (tmp_path / "hookinspect.toml").write_text('port = 9000\n[secrets]\nstripe = "whsec_x"\n')
    result = invoke("replay", "1", store_path=store_path)
    assert result.exit_code == 2 and "no target" in result.stderr  # the file is read; the replay has nowhere to go


def test_settings_of_the_wrong_kind_are_one_line_each(store_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seed(store_path, make_delivery())
    for text, said in (('read_timeout = "soon"\n', "read-timeout must be a number of seconds"),
                       ("read_timeout = nan\n", "read-timeout must be a number of seconds"),
                       ("forward_to = 5\n", "setting forward_to must be a URL or a list of URLs"),
                       ('forward_to = ["http://127.0.0.1:9/", 5]\n', "setting forward_to must be a URL or a list")):
        (tmp_path / "hookinspect.toml").write_text(text)
        command = ["listen", "--port", "0"] if "read_timeout" in text else ["replay", "1"]
        one_line_usage_error(invoke(*command, store_path=store_path), said)


def test_rm_clear_and_import_say_what_they_did_in_json(store_path, tmp_path):
    seed(store_path, make_delivery(path="/a"), make_delivery(path="/b"), make_delivery(path="/c"))
    exported = invoke("export", "1", "--format", "json", store_path=store_path).stdout
    assert json.loads(invoke("rm", "1-2", "--json", store_path=store_path).stdout) == {"deleted": 2, "seqs": [1, 2]}
    (tmp_path / "one.json").write_text(exported)
    assert json.loads(invoke("import", str(tmp_path / "one.json"), "--json", store_path=store_path).stdout) == \
        {"imported": 1, "skipped": 0}
    assert json.loads(invoke("clear", "--yes", "--json", store_path=store_path).stdout) == {"deleted": 2}


def test_tables_fit_the_terminal_and_never_break_a_name(store_path):
    long = make_delivery(path="/stripe/webhooks/production/payments")
    long.provider, long.event_type = "stripe", "payment_intent.amount_capturable_updated"
    seed(store_path, make_delivery(path="/a"), long)
    for width in (50, 60, 80):
        result = runner.invoke(app, ["ls", "--store", str(store_path)], env={"COLUMNS": str(width)})
        lines = result.stdout.splitlines()
        assert len(lines) == 3, result.stdout  # a header and one line per delivery: nothing wrapped
        assert all(len(line) <= width for line in lines)
        assert lines[0].startswith("#") and "method" in lines[0] and "path" in lines[0]
        assert "…" in lines[1]  # cut with an ellipsis
    samples = runner.invoke(app, ["samples"], env={"COLUMNS": "80"}).stdout
    assert "stripe/payment_intent.succeeded " in samples  # the name whole; the description wraps


def test_export_to_a_file_says_what_it_wrote_in_json(store_path, tmp_path):
    seed(store_path, make_delivery(headers=[("Authorization", "Bearer s3cret")]))
    result = invoke("export", "1", "--format", "har", "-o", str(tmp_path / "x.har"), "--json", store_path=store_path)
    said = json.loads(result.stdout)
    assert said["file"] == str(tmp_path / "x.har") and said["format"] == "har" and said["deliveries"] == [1]
    assert said["masked"] and "s3cret" not in result.stdout
    assert invoke("export", "1", "--json", store_path=store_path).exit_code == 2
