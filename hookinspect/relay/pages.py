"""The channel page's static files, under a strict Content-Security-Policy."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

PAGE_FILES = {"channel.js": "text/javascript", "app.css": "text/css"}
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def page_file(name: str) -> bytes:
    return resources.files("hookinspect.web").joinpath("static", name).read_bytes()


async def channel_page_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in PAGE_FILES:
        raise web.HTTPNotFound()
    return web.Response(body=page_file(name), content_type=PAGE_FILES[name], charset="utf-8", headers=PAGE_HEADERS)
