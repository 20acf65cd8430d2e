"""Generated hostile input thrown at the real app through Pilot: paths, headers, bodies, a real
target's answers and filter strings full of markup and control sequences. Nothing may raise,
hang or reach the terminal as a control sequence."""

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from textual.widgets import Input

from hookinspect.store.sqlite import Store
from hookinspect.tui.app import HookinspectApp
from hookinspect.workspace import Workspace
from tests.factories import RecordingTarget, make_delivery
from tests.tui.test_app import listed

# Pieces that broke terminal UIs before: Rich/Textual markup, actions in markup, ANSI and OSC
# sequences, C1 controls, bidi overrides, lone surrogates' stand-ins, deep JSON.
FRAGMENTS = ["[/]", "[bold", "[@click=app.quit]x[/]", "[link=http://evil]y[/link]", "\\[", "]", "$.", ">>",
             "\x1b[2J", "\x1b]52;c;cHduZWQ=\x07", "\x1b]8;;http://evil\x1b\\", "\x9b31m", "\x07", "\x08", "\r",
             "\u202e", "\x00", "\n", "status:[/]", "provider:", "{", '"', "[" * 40, "%", "*", "\udcff"]
HOSTILE = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=8).map("".join)
KEYS = st.sampled_from(["j", "k", "g", "G", "home", "end", "pagedown", "pageup", "1", "2", "3", "4", "A", "d",
                        "space", "enter", "escape", "f", "r", "tab"])


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape") if "\udcff" not in text else text.encode("utf-8", "surrogatepass")


def nested_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@st.composite
def scenario(draw):
    deliveries = [(draw(HOSTILE), draw(HOSTILE), draw(HOSTILE),
                   draw(st.sampled_from([b"", nested_json(600), b"\x1f\x8b\x08junk"]) | st.binary(max_size=64)))
                  for _ in range(draw(st.integers(1, 4)))]
    return {
        "deliveries": deliveries,
        "answer": (draw(st.sampled_from([200, 404, 500])), utf8(draw(HOSTILE))),
        "keys": draw(st.lists(KEYS, min_size=1, max_size=12)),
        "filter": draw(HOSTILE),
    }


async def run(case, directory: Path) -> None:
    store_path = directory / "store.db"
    with Store(store_path) as store:
        for path, header, text, extra in case["deliveries"]:
            body = utf8(text) + extra
            # aiohttp refuses a request line that is not UTF-8, so a stored path never holds a raw byte.
            path = path.replace("\udcff", "\ufffd")
            store.insert_delivery(make_delivery(body, path="/" + path, headers=[("X-" + header.replace(":", "") or "X", header)],
                                                content_type="application/json" if extra else "text/plain"))
    target = await RecordingTarget().start()
    target.status, target.body = case["answer"]
    target.headers = {"Content-Type": "text/plain"}
    try:
        with Workspace(store_path) as workspace:
            app = HookinspectApp(workspace, target=target.url + "/in")
            async with app.run_test(size=(100, 30), notifications=True) as pilot:
                await listed(pilot)
                await pilot.press(*case["keys"])
                await pilot.press("escape", "slash")
                app.query_one("#filter", Input).value = case["filter"]
                await pilot.press("enter", "j", "r")
                await app.workers.wait_for_complete()
                await pilot.pause()
                for notification in app._notifications:
                    assert "\x1b" not in notification.message and "\x07" not in notification.message
            assert app.return_code in (None, 0)
    finally:
        await target.stop()


# Bounded: 20 examples, no example database written, and no shrinking (a failure is reported
# as found, with its seed, instead of minutes of shrinking through a real app).
@settings(max_examples=20, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_hostile_input_never_breaks_the_ui(case):
    with tempfile.TemporaryDirectory() as directory:
        # A hang fails the example instead of the whole run.
        asyncio.run(asyncio.wait_for(run(case, Path(directory)), timeout=60))
