"""Targets: where a delivery goes. The URL rule (documented in the README): the delivery's
path is appended to a target whose path is empty or ends with "/" (`http://localhost:3000` +
`/stripe/hook`); a target with any other path is used as is (`http://localhost:3000/webhooks`).
The delivery's query string is appended to the target's own query in both cases.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from hookinspect.errors import UsageError
from hookinspect.values import origin_path

# Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the ones the
# client recomputes; they are never copied from the captured request.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})

def validate_target(url: str) -> str:
    """A usable http(s) URL or a UsageError naming what is wrong. `localhost:3000/hooks` (no
    scheme) means http://localhost:3000/hooks, as it does for curl and httpie."""
    url = url.strip()
    host = url.split("/", 1)[0]
    if "://" not in url and (":" in host or "." in host or host == "localhost"):  # a host, not a typo like `nope`
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http(s) URL", "for example http://localhost:3000/webhooks")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"{url!r} has an invalid port") from None
    return url


def target_url(target: str, path: str, query: str) -> str:
    """Where a delivery goes on a target (see the module docstring for the rule)."""
    parts = urlsplit(target)
    path = origin_path(path)  # a request sent in absolute form goes to the target's host all the same
    base_path = parts.path
    if not base_path or base_path.endswith("/"):
        full_path = base_path.rstrip("/") + (path if path.startswith("/") else "/" + path)
    else:
        full_path = base_path
    full_query = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit((parts.scheme, parts.netloc, full_path, full_query, ""))
