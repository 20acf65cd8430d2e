"""One guard in front of every route of a local HTTP surface: the web inspector (`web`,
`listen --web`) and the relay's pages and API.

Two dangers, one door each:
- **DNS rebinding.** A page on evil.example makes its own name resolve to 127.0.0.1 and then
  reads our answers as same-origin. The browser still sends `Host: evil.example`, so a request
  whose Host names something the server was not told to answer is refused before any handler
  runs and before anything is read from a store. An IP literal cannot be rebound, so the
  bound address (and, on a wildcard bind, any address) is always a valid Host.
- **Cross-site requests.** `<img src=http://127.0.0.1:8788/api/...>` on any page costs us the
  work the request asks for even though the page cannot read the answer. Browsers say where a
  request comes from (`Sec-Fetch-Site`, `Origin`); reads and writes of an API from another
  site are refused unless they carry the server's token, as Jupyter and the VS Code server
  do. A top-level navigation from elsewhere (a link) may still open a page.

Clients that are not browsers (curl, scripts) send neither header and are judged by Host
alone, which they can set to anything: this guard is about what a browser can be made to do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from hookinspect.errors import one_line

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})
ANY_HOST = "*"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(value: str | None) -> str:
    """The name in a Host header or a URL's authority, lower-cased, without port or brackets."""
    if not value:
        return ""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_wildcard(address: str) -> bool:
    return address.strip("[]") in ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class HostRule:
    """Which Host headers a server answers."""

    names: frozenset[str]
    any_ip: bool = False  # bound to every address: whichever IP the client dialled is ours
    any_host: bool = False  # `--allowed-host '*'`: the operator vouches for every name

    @classmethod
    def for_bind(cls, bind_host: str, allowed: Iterable[str] = ()) -> HostRule:
        """Loopback names, the bound address and the names given explicitly."""
        given = [host_name(name) if name != ANY_HOST else ANY_HOST for name in allowed]
        bound = host_name(bind_host)
        return cls(names=frozenset({*LOOPBACK_NAMES, *given, bound} - {ANY_HOST, ""}),
                   any_ip=not is_loopback(bound), any_host=ANY_HOST in given)

    def allows(self, host_header: str | None) -> bool:
        if self.any_host:
            return True
        name = host_name(host_header)
        if name in self.names:
            return True
        if self.any_ip and is_ip_literal(name):
            return True
        return _is_loopback_ip(name)


def is_loopback(host: str) -> bool:
    """True for addresses (and names) only this machine can reach."""
    name = host_name(host)
    return name in LOOPBACK_NAMES or _is_loopback_ip(name)


def _is_loopback_ip(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_cross_site(request: web.Request) -> bool:
    """The browser says this request was made by a page of another site (or of no site: a
    sandboxed frame, a file)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    scheme, _, authority = origin.partition("://")
    return authority.lower() != (request.host or "").lower() or scheme.lower() != request.scheme


def is_navigation(request: web.Request) -> bool:
    """A top-level page load (a link followed, a URL typed), which another site cannot read."""
    return request.method in ("GET", "HEAD") and request.headers.get("Sec-Fetch-Mode") == "navigate" \
        and request.headers.get("Sec-Fetch-Dest", "document") == "document"


def refusal(status: int, text: str) -> web.Response:
    """A plain-text refusal with nothing of the store in it."""
    return web.Response(status=status, text=f"hookinspect: {text}\n", content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def host_guard(rule: HostRule, *, guarded: Callable[[web.Request], bool] = lambda _request: True,
               has_token: Callable[[web.Request], bool] = lambda _request: False,
               pages: Callable[[web.Request], bool] = lambda _request: False) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware: a Host the rule does not allow is 421 on every route; a cross-site
    request to a `guarded` route is 403 unless it carries the token, or is a navigation to one
    of the `pages`."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not rule.allows(request.headers.get("Host")):
            shown = one_line(repr(host_name(request.headers.get("Host"))), 120)
            return refusal(421, f"this server does not answer to the name {shown} (a page that rebinds "
                                "its name to this machine would); if you meant it, start the server with "
                                "--allowed-host NAME")
        if guarded(request) and is_cross_site(request) and not has_token(request) \
                and not (pages(request) and is_navigation(request)):
            return refusal(403, "a page of another site may not use this server; open it directly")
        return await handler(request)

    return guard
