"""The filter-to-SQL compiler: the SQL part of a DeliveryFilter (JSON tests run in Python)."""

from __future__ import annotations

from typing import Any

from hookinspect.formats.filters import DeliveryFilter, content_type_globs
from hookinspect.store.attempts import latest_attempt

_LAST_STATUS = latest_attempt("status")
_LAST_ERROR = latest_attempt("error_kind")
_HAS_ATTEMPT = "EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_seq = d.seq)"


def _status_clause(status: str) -> str:
    if status.endswith("xx"):
        low = int(status[0]) * 100
        return f"({_LAST_STATUS} BETWEEN {low} AND {low + 99})"
    if status.isdigit():
        return f"({_LAST_STATUS} = {int(status)})"
    return {
        "ok": f"({_LAST_STATUS} BETWEEN 200 AND 299)",
        "failed": f"({_HAS_ATTEMPT} AND coalesce({_LAST_STATUS} NOT BETWEEN 200 AND 299, 1))",
        "error": f"({_LAST_ERROR} IS NOT NULL)",
        "none": f"(NOT {_HAS_ATTEMPT})",
    }[status]


def where_clause(flt: DeliveryFilter | None) -> tuple[str, list[Any]]:
    """` AND ...` over the deliveries table aliased `d`, and its parameters ("" when nothing filters)."""
    if flt is None:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []

    def any_of(template: str, values: list[Any]) -> None:
        if values:
            clauses.append("(" + " OR ".join([template] * len(values)) + ")")
            for value in values:
                params.extend([value] * template.count("?"))

    any_of("d.method = ?", flt.methods)
    any_of("d.path GLOB ?", flt.path_globs)
    any_of("d.provider = ?", flt.providers)
    any_of("d.event_type GLOB ?", flt.event_globs)
    any_of("d.verdict = ?", flt.verdicts)
    any_of("lower(d.content_type) GLOB ?", content_type_globs(flt.content_types))
    for text in flt.texts:
        # SQL finds it in the path or the raw body; a compressed body may hold it too, which
        # the store checks on its decoded form (DeliveryFilter.body_matches).
        clauses.append("(instr(d.path, ?) > 0 OR instr(d.body, ?) > 0 OR instr(lower(d.headers), 'content-encoding') > 0)")
        params.extend([text, text.encode("utf-8")])
    if flt.statuses:
        clauses.append("(" + " OR ".join(_status_clause(status) for status in flt.statuses) + ")")
    if flt.since_us is not None:
        clauses.append("d.received_us >= ?")
        params.append(flt.since_us)
    if flt.until_us is not None:
        clauses.append("d.received_us <= ?")
        params.append(flt.until_us)
    if not clauses:
        return "", []
    return " AND " + " AND ".join(clauses), params
