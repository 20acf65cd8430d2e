"""The README's exit-code table is what the commands return: the table is read from the
README and every code in it must have a scenario here that produces it."""

import re
import socket
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from hookinspect.cli.app import app
from hookinspect.store.sqlite import Store
from tests.factories import free_port, hookinspect_cmd, make_delivery

README = Path(__file__).resolve().parents[2] / "README.md"
runner = CliRunner()


def documented_codes():
    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d) \| (.+) \|$", section, re.M)}


def run(*args):
    return runner.invoke(app, list(args))


def scenarios(tmp_path):
    store = tmp_path / "store.db"
    with Store(store) as s:
        s.insert_delivery(make_delivery(b'{"a":1}'))
        s.insert_delivery(make_delivery(b'{"a":2}'))
    (tmp_path / "corrupt.db").write_bytes(b"this is not a database" * 100)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port_in_use = subprocess.run(hookinspect_cmd("listen", "--port", str(taken.getsockname()[1]),
                                                     "--store", str(tmp_path / "other.db")),
                                     capture_output=True, text=True, timeout=60).returncode
    return {
        0: [run("ls", "--store", str(store)).exit_code],
        1: [run("diff", "1", "2", "--store", str(store)).exit_code],  # differences found
        2: [run("ls", "--limit", "many", "--store", str(store)).exit_code,  # a bad flag
            run("show", "99", "--store", str(store)).exit_code,  # an unknown delivery
            run("ls", "--filter", "nokey:x", "--store", str(store)).exit_code],  # bad input
        3: [run("ls", "--store", str(tmp_path / "corrupt.db")).exit_code],
        4: [port_in_use,
            run("send", "github/push", "--to", f"127.0.0.1:{free_port()}/").exit_code],  # nothing answers
    }


def test_every_documented_exit_code_is_what_the_commands_return(tmp_path):
    documented = documented_codes()
    assert set(documented) == {0, 1, 2, 3, 4}
    seen = scenarios(tmp_path)
    assert set(seen) == set(documented), "a documented code with no scenario here (or the other way round)"
    for code, results in seen.items():
        assert results == [code] * len(results), f"exit {code} ({documented[code]}): got {results}"
