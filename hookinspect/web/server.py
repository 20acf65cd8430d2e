"""The web inspector: an aiohttp app over the workspace, JSON endpoints for one static page.

Safe by construction: the page puts captured text into the DOM with `textContent` only (the
server sends lines of (text, style) spans, the same views the terminal shows); every answer
carries a strict Content-Security-Policy (no inline script, no other origin); state changes
are POSTs carrying the per-run CSRF token the page reads from a <meta> tag; and a bind that
is not loopback needs the access token printed at start (as Jupyter does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from hookinspect.body import json_text
from hookinspect.errors import HookinspectError, NotFoundError, UsageError
from hookinspect.formats.diff import diff_deliveries
from hookinspect.formats.export import EXPORTERS, ExportItem, export
from hookinspect.formats.filters import parse_filter
from hookinspect.formats.targets import validate_target
from hookinspect.net.guard import HostRule, host_guard
from hookinspect.send.forward import RequestEdits
from hookinspect.send.replay import last_own_target, replay_deliveries
from hookinspect.signing.registry import Secrets, resigner_for
from hookinspect.store.deliveries import DeliveryRow
from hookinspect.values import MAX_NUMBER, mask_userinfo, parse_number
from hookinspect.views.delivery import change_lines, row_cells
from hookinspect.views.detail import draw_detail, read_detail
from hookinspect.views.inbox import UNDO_SECONDS, Inbox, Trash
from hookinspect.views.text import Line, counted
from hookinspect.workspace import ChangeKind, StoreChange, Workspace

PAGE_SIZE = 100
# How long one list request may read bodies for a filter before it stops and says so.
SCAN_SECONDS = 5.0
# Events a slow browser tab may have waiting before it is told to reload instead.
SSE_QUEUE_LIMIT = 1000

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}


@dataclass
class WebSettings:
    secrets: Secrets = field(default_factory=Secrets)
    target: str | None = None  # where `replay` sends when the page names no URL
    access_token: str | None = None  # required for every request when not None (a non-loopback bind)
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # The Host names this inspector answers (the bound address, loopback, --allowed-host).
    hosts: HostRule = field(default_factory=lambda: HostRule.for_bind("127.0.0.1"))
    undo_seconds: float = UNDO_SECONDS  # how long a deleted delivery can be brought back
    # Says, in one line, what failed where no request is waiting for it (a delete for good).
    on_error: Callable[[str], None] = field(default=lambda _line: None)


WORKSPACE = web.AppKey("workspace", Workspace)
SETTINGS = web.AppKey("settings", WebSettings)
STATE = web.AppKey("state", "WebState")


class WebState:
    """What the app keeps between requests: live subscribers and the list model (views/inbox.py)."""

    def __init__(self, inbox: Inbox) -> None:
        self.subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.inbox = inbox
        self.trash = inbox.trash
        # Set at shutdown: every scan of bodies still running stops at its next delivery.
        self.closing = threading.Event()

    def scan_stop(self, request: web.Request, seconds: float = SCAN_SECONDS) -> Callable[[], bool]:
        """When a scan running for `request` in a thread must stop: its deadline passed, the
        client went away, or the server is closing."""
        deadline = time.monotonic() + seconds
        transport = request.transport
        closing = self.closing
        return lambda: (closing.is_set() or time.monotonic() > deadline
                        or transport is None or transport.is_closing())


# -- helpers ---------------------------------------------------------------------------------

def lines_json(lines: list[Line]) -> list[list[list[str]]]:
    """View lines as JSON: [[text, style], ...] per line; the page sets each span's textContent."""
    return [[[text, style] for text, style in line] for line in lines]


def row_json(row: DeliveryRow) -> dict[str, Any]:
    cells = row_cells(row, with_ms=True)
    return {"seq": row.seq, "cells": {name: lines_json([line])[0] for name, line in cells.items()}}


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json_text(data, indent=None), status=status, content_type="application/json")


def problem(status: int, message: str, hint: str | None = None) -> web.Response:
    """A clear 4xx: {"error": "...", "hint": "..."}; nothing was changed."""
    return json_response({"error": message, "hint": hint}, status)


def seq_of(request: web.Request) -> int:
    text = request.match_info["seq"]
    seq = parse_number(text)
    if seq is None:
        raise web.HTTPNotFound(text=json_text({"error": f"{text!r} is not a delivery number"}), content_type="application/json")
    return seq


async def body_json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=json_text({"error": "the body is not JSON"}), content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text=json_text({"error": "the body must be a JSON object"}), content_type="application/json")
    return data


# -- middleware ------------------------------------------------------------------------------

def has_access_token(request: web.Request) -> bool:
    """The request carries this inspector's access token (query, cookie or bearer)."""
    expected = request.app[SETTINGS].access_token
    if expected is None:
        return False
    given = request.query.get("token") or request.cookies.get("hookinspect_token") or \
        request.headers.get("Authorization", "").removeprefix("Bearer ")
    return secrets.compare_digest(given.encode(), expected.encode())


def is_page(request: web.Request) -> bool:
    return request.path == "/" or request.path.startswith("/deliveries/")


@web.middleware
async def guard(request: web.Request, handler):  # noqa: ANN001, ANN201
    """Access token (when set), CSRF token on state changes, security headers on every answer,
    and a HookinspectError as a clear 4xx."""
    settings = request.app[SETTINGS]
    if settings.access_token is not None:
        if not has_access_token(request):
            response: web.StreamResponse = problem(401, "this inspector needs its access token",
                                                   "open the URL with ?token=… that `hookinspect web` printed")
            response.headers.update(SECURITY_HEADERS)
            return response
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get("X-CSRF-Token", "")
        if not secrets.compare_digest(given.encode(), settings.csrf_token.encode()):
            response = problem(403, "missing or wrong CSRF token: reload the page")
            response.headers.update(SECURITY_HEADERS)
            return response
    try:
        response = await handler(request)
    except NotFoundError as exc:
        response = problem(404, exc.message, exc.hint)
    except HookinspectError as exc:
        response = problem(400, exc.message, exc.hint)
    if settings.access_token is not None and request.query.get("token"):
        response.set_cookie("hookinspect_token", settings.access_token, httponly=True, samesite="Strict")
    response.headers.update(SECURITY_HEADERS)
    return response


# -- pages -----------------------------------------------------------------------------------

def static_bytes(name: str) -> bytes:
    return resources.files("hookinspect.web").joinpath("static", name).read_bytes()


async def index(request: web.Request) -> web.Response:
    """The page (also at /deliveries/N: deep links survive a reload). The CSRF token goes in
    a <meta> tag, not an inline script, so the CSP can forbid inline script."""
    html = static_bytes("index.html").decode("utf-8")
    html = html.replace("{{csrf}}", request.app[SETTINGS].csrf_token)
    return web.Response(text=html, content_type="text/html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = next((t for suffix, t in STATIC_TYPES.items() if name.endswith(suffix)), None)
    if kind is None or "/" in name or name.startswith("."):
        raise web.HTTPNotFound()
    try:
        data = static_bytes(name)
    except FileNotFoundError:
        raise web.HTTPNotFound() from None
    return web.Response(body=data, headers={"Content-Type": kind})


# -- JSON endpoints --------------------------------------------------------------------------

async def list_deliveries(request: web.Request) -> web.Response:
    """A page of the list, newest first: ?filter=EXPR&before=SEQ&limit=N, or ?after=SEQ for what
    is newer (up to `limit`; `more` says there is still more). A bad filter is a 400 whose error
    the page shows under the filter box."""
    workspace = request.app[WORKSPACE]
    try:
        flt = parse_filter(request.query.get("filter", ""))
    except UsageError as exc:
        return problem(400, exc.message, exc.hint)
    given = {name: request.query[name] for name in ("before", "after", "limit") if name in request.query}
    numbers = {name: parse_number(text) for name, text in given.items()}
    if None in numbers.values():
        return problem(400, "before, after and limit are numbers")
    before, after = numbers.get("before"), numbers.get("after")
    limit = max(1, min(numbers.get("limit", PAGE_SIZE), 1000))
    state = request.app[STATE]
    stop = state.scan_stop(request)
    page = await workspace.read(lambda store: state.inbox.page(store, flt, before=before, after=after, limit=limit,
                                                               stop=stop))
    return json_response({"rows": [row_json(r) for r in page.rows], "total": page.total, "more": page.more,
                          "oldest": page.rows[-1].seq if page.rows else None})


async def delivery_detail(request: web.Request) -> web.Response:
    seq = seq_of(request)
    workspace = request.app[WORKSPACE]
    settings = request.app[SETTINGS]

    read = await workspace.read(lambda store: read_detail(store, seq))
    own_target = await workspace.read(lambda store: last_own_target(store, seq))
    show_all = request.query.get("all") in ("1", "true")  # long arrays unfolded, the 256 KiB cut lifted
    view = await asyncio.to_thread(draw_detail, read, settings.secrets, show_all=show_all)
    delivery, attempts = read.delivery, read.attempts
    return json_response({
        "seq": seq, "method": delivery.method, "target": delivery.target, "event_type": delivery.event_type,
        "headers": [[k, v] for k, v in delivery.headers], "body_text": delivery.text(),
        "attempts": len(attempts), "request": lines_json(view.request), "attempts_view": lines_json(view.attempts),
        "signature": lines_json(view.signature),
        # Shown with its password masked; a replay that sends it back unchanged means the real one.
        "default_target": mask_userinfo(default) if (default := settings.target or own_target) else None,
    })


async def replay(request: web.Request) -> web.Response:
    """POST {"to": URL?, "headers": [[name, value]]?, "body": text?}: sent through the core's
    replay (re-signed when a secret is known); edits never change the stored delivery."""
    seq = seq_of(request)
    data = await body_json(request)
    workspace = request.app[WORKSPACE]
    settings = request.app[SETTINGS]
    delivery = await workspace.read(lambda store: store.get(seq))
    default = settings.target or await workspace.read(lambda store: last_own_target(store, seq))
    to = data.get("to") or default
    if default and to == mask_userinfo(default):
        to = default  # the page showed it masked
    if not to:
        return problem(400, f"no target for #{seq}: never sent anywhere from here (a target only an imported file names is not used)", "give a URL")
    to = validate_target(str(to))
    edits = None
    if "headers" in data or "body" in data:
        headers = data.get("headers", [[k, v] for k, v in delivery.headers])
        if not isinstance(headers, list) or not all(isinstance(h, list) and len(h) == 2 for h in headers):
            return problem(400, "headers must be a list of [name, value] pairs")
        body = data.get("body")
        edits = RequestEdits.replacing(delivery.headers, [(str(k), str(v)) for k, v in headers],
                                       str(body).encode("utf-8") if body is not None else None)
    secrets_ = settings.secrets
    [attempt] = await replay_deliveries(workspace, {seq: to}, edits=edits,
                                        resigner_for=(lambda d: resigner_for(d, secrets_)) if secrets_ else None)
    return json_response({"outcome": attempt.outcome, "ok": attempt.is_success, "latency_ms": attempt.latency_ms,
                          "error": attempt.error_message, "target": mask_userinfo(to)})


async def diff(request: web.Request) -> web.Response:
    """?a=SEQ&b=SEQ, or ?b=SEQ alone: the previous delivery of the same event."""
    workspace = request.app[WORKSPACE]
    a_text, b_text = request.query.get("a", ""), request.query.get("b", "")
    a_seq, b_seq = parse_number(a_text), parse_number(b_text)
    if b_seq is None or (a_text and a_seq is None):
        return problem(400, "a and b are delivery numbers")
    after = await workspace.read(lambda store: store.get(b_seq))
    if a_seq is not None:
        before = await workspace.read(lambda store: store.get(a_seq))
    else:
        previous = await workspace.read(lambda store: store.previous_of_event(after))
        if previous is None:
            return json_response({"lines": [[["nothing to compare with: mark a delivery first", "yellow"]]]})
        before = await workspace.read(lambda store: store.get(previous.seq))
    changes = await asyncio.to_thread(diff_deliveries, before, after)
    header: Line = [(f"#{before.seq} → #{after.seq}   ({counted(len(changes), 'change')})", "bold")]
    return json_response({"a": before.seq, "b": after.seq, "lines": lines_json([header, [], *change_lines(changes)])})


async def download(request: web.Request) -> web.Response:
    """?seqs=1,2&format=har|json|curl|fixture|raw|httpie: a download, secrets masked as `export` masks them."""
    fmt = request.query.get("format", "har")
    if fmt not in EXPORTERS:
        return problem(400, f"unknown format {fmt!r}", "one of " + ", ".join(EXPORTERS))
    seqs = [parse_number(s) for s in request.query.get("seqs", "").split(",") if s]
    if None in seqs:
        return problem(400, "seqs are delivery numbers separated by commas")
    if not seqs:
        return problem(400, "name the deliveries: ?seqs=1,2")
    items = await request.app[WORKSPACE].read(lambda store: [ExportItem(store.get(s), store.attempts(s)) for s in seqs])
    rendered, _masked = await asyncio.to_thread(export, items, fmt)
    data = rendered if isinstance(rendered, bytes) else rendered.encode("utf-8", "surrogateescape")
    name = f"hookinspect-{'-'.join(map(str, seqs[:3]))}.{EXPORTERS[fmt].extension}"
    return web.Response(body=data, headers={"Content-Type": "application/octet-stream",
                                            "Content-Disposition": f'attachment; filename="{name}"'})


async def delete(request: web.Request) -> web.Response:
    """POST {"seqs": [...]}: hidden at once, deleted for good after the undo window unless undone."""
    data = await body_json(request)
    seqs = data.get("seqs")
    if not isinstance(seqs, list) or not seqs or not all(type(s) is int and 0 <= s <= MAX_NUMBER for s in seqs):
        return problem(400, "seqs must be a non-empty list of delivery numbers")
    trash = request.app[STATE].trash
    await request.app[WORKSPACE].read(lambda store: [store.get(s) for s in seqs])  # every one must exist
    return json_response({"undo": trash.put(seqs), "seqs": seqs, "seconds": trash.seconds})


async def undo(request: web.Request) -> web.Response:
    restored = request.app[STATE].trash.undo(request.match_info["token"])
    if restored is None:
        return problem(404, "nothing to undo: the deliveries were deleted for good (or never were)")
    return json_response({"restored": restored})


async def hidden(request: web.Request) -> web.Response:
    """Deliveries deleted but restorable: the page leaves them out of the list."""
    return json_response({"seqs": sorted(request.app[STATE].trash.hidden())})


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `deliveries` (new ones up to seq), `attempt` (#seq was sent), `removed`."""
    state = request.app[STATE]
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SSE_QUEUE_LIMIT)
    state.subscribers.add(queue)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           **SECURITY_HEADERS})
    await response.prepare(request)
    try:
        await response.write(b": hello\n\n")
        while True:
            try:
                async with asyncio.timeout(15):  # not wait_for, which on 3.11 can swallow a cancel
                    event = await queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event is None:
                break
            await response.write(f"event: {event['kind']}\ndata: {json.dumps(event)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        state.subscribers.discard(queue)
    return response


def _publish(app: web.Application, change: StoreChange) -> None:
    """A workspace change, to every open page (called in whichever thread announced it)."""
    if change.kind not in (ChangeKind.DELIVERIES, ChangeKind.ATTEMPT, ChangeKind.REMOVED, ChangeKind.STORE):
        return
    event = {"kind": change.kind, "seq": change.seq}
    loop = app["loop"]
    for queue in list(app[STATE].subscribers):
        def put(q=queue) -> None:  # noqa: ANN001
            with contextlib.suppress(asyncio.QueueFull):  # a stuck tab misses events; it reloads on "store"
                q.put_nowait(event)
        loop.call_soon_threadsafe(put)


async def _start(app: web.Application) -> None:
    app["loop"] = asyncio.get_running_loop()
    workspace = app[WORKSPACE]
    app["unsubscribe"] = workspace.changes.subscribe(lambda change: _publish(app, change))
    app["unfollow"] = workspace.follow()  # deliveries another process (listen) stores become events


async def _stop(app: web.Application) -> None:
    app["unfollow"]()
    app["unsubscribe"]()
    state = app[STATE]
    state.closing.set()
    for queue in list(state.subscribers):
        queue.put_nowait(None)
    await state.trash.empty()  # what was deleted leaves the store now


def create_web_app(workspace: Workspace, settings: WebSettings | None = None) -> web.Application:
    settings = settings or WebSettings()
    # The Host and cross-site guard first: a refused request reaches neither a handler nor the store.
    sites = host_guard(settings.hosts, has_token=has_access_token, pages=is_page)
    app = web.Application(middlewares=[sites, guard], client_max_size=16 * 1024 * 1024)
    app[WORKSPACE] = workspace
    app[SETTINGS] = settings
    # A delete that fails is said once, and open pages list the deliveries again.
    trash = Trash(workspace, seconds=settings.undo_seconds, on_error=lambda line: settings.on_error(line),
                  on_restored=lambda _seqs: _publish(app, StoreChange(ChangeKind.STORE)))
    app[STATE] = WebState(Inbox(workspace, trash))
    app.router.add_get("/", index)
    app.router.add_get("/deliveries/{seq}", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/deliveries", list_deliveries)
    app.router.add_get("/api/deliveries/{seq}", delivery_detail)
    app.router.add_post("/api/deliveries/{seq}/replay", replay)
    app.router.add_get("/api/diff", diff)
    app.router.add_get("/api/export", download)
    app.router.add_post("/api/delete", delete)
    app.router.add_post("/api/undo/{token}", undo)
    app.router.add_get("/api/hidden", hidden)
    app.router.add_get("/api/events", events)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return app
