"""Deliveries, attempts, signatures and differences as lines and cells, for every shell."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hookinspect.body import escape_controls
from hookinspect.formats.diff import Change
from hookinspect.formats.redaction import redact_query
from hookinspect.model import Attempt, Delivery, Rejection
from hookinspect.signing.registry import SignatureReport
from hookinspect.store.deliveries import DeliveryRow
from hookinspect.store.queue import QueueItem
from hookinspect.views.body import PRETTY_LIMIT, body_lines
from hookinspect.views.text import (
    VERDICT_STYLES,
    Line,
    aligned,
    cut_long_lines,
    human_size,
    local_time,
    safe,
    safe_url,
    short_type,
    status_style,
)


def delivery_line(delivery: Delivery) -> Line:
    """One line per capture: the live line of `listen`."""
    ctype = (delivery.headers.get("content-type") or "").split(";")[0]
    # The live line sits in scrollback and screen shares: secret query values (token=…) are masked.
    query, _masked = redact_query(delivery.query)
    target = delivery.path + (f"?{query}" if query else "")
    line: Line = [(local_time(delivery.received_us), "dim"), ("  ", ""), (f"#{delivery.seq:<5}", "bold"), (" ", ""),
                  safe(f"{delivery.method:<6}", "bold magenta"), (" ", ""), safe(target, keep_newlines=False),
                  ("  ", ""), (human_size(delivery.size), "cyan"), ("  ", ""), safe(ctype, "dim")]
    if delivery.provider:
        line += [("  ", ""), safe(" ".join(x for x in (delivery.provider, delivery.event_type) if x), "blue")]
    if delivery.verdict:
        line += [("  ", ""), (delivery.verdict, VERDICT_STYLES.get(delivery.verdict, ""))]
        if delivery.verdict != "valid" and delivery.verdict_reason:
            line += [(" (", "dim"), safe(delivery.verdict_reason, "dim", keep_newlines=False), (")", "dim")]
    return line


def attempt_line(attempt: Attempt, message: str = "") -> Line:
    """The live line of one send: `#12 → http://target 200 3 ms`."""
    line: Line = [(f"{'':12}  #{attempt.delivery_seq:<5} → ", "dim"), safe(attempt.target_url, "dim", keep_newlines=False),
                  (" ", ""), (attempt.outcome, status_style(attempt.outcome))]
    if attempt.latency_ms is not None:
        line.append((f" {attempt.latency_ms:.0f} ms", "dim"))
    if attempt.error_message:
        line += [(" ", ""), safe(attempt.error_message, "red", keep_newlines=False)]
    elif attempt.response is not None and not attempt.is_success and attempt.response.body:
        line += [(" ", ""), safe(attempt.response.text()[:300], "red", keep_newlines=False)]
    if message:
        line.append((" " + message, "bold red"))
    return line


def row_cells(row: DeliveryRow, with_ms: bool = False) -> dict[str, Line]:
    """The cells of a listing row, by column: seq, time, method, path, size, type, event, sig, last."""
    last = row.last_outcome or ""
    if last and row.last_latency_ms is not None:
        last += f" {row.last_latency_ms:.0f}ms"
    return {
        "seq": [(str(row.seq), "")],
        "time": [(local_time(row.received_us, with_ms=with_ms), "dim")],
        "method": [safe(row.method, "bold magenta", keep_newlines=False)],
        "path": [safe(row.target, keep_newlines=False)],
        "size": [(human_size(row.size), "")],
        "type": [safe(short_type(row.content_type), keep_newlines=False)],
        "event": [safe(" ".join(x for x in (row.provider, row.event_type) if x), "blue", keep_newlines=False)],
        "sig": [(row.verdict or "", VERDICT_STYLES.get(row.verdict or "", ""))],
        "last": [(last, status_style(row.last_outcome))],
    }


def signature_lines(report: SignatureReport) -> list[Line]:
    """Provider, event and the verdict with its reason, or why there is none."""
    if report.provider is None:
        return [[("no known provider signed this delivery", "dim")]]
    lines: list[Line] = [[("provider ", "dim"), safe(report.provider), ("   event ", "dim"), safe(report.event_type or "?")]]
    if report.status:
        lines.append([("signature ", "dim"), (report.status, VERDICT_STYLES.get(report.status, "")), (": ", ""),
                      safe(report.reason or "")])
    else:
        lines.append([("signature not checked: give the secret with --secret PROVIDER=… (or HOOKINSPECT_SECRET_…)", "dim")])
    return lines


def delivery_lines(delivery: Delivery, attempt: Attempt | None = None, body_limit: int = PRETTY_LIMIT,
                   fold_arrays: bool = True) -> list[Line]:
    """`show N`: request line, when and from where, provider and verdict, headers, body, latest attempt."""
    lines: list[Line] = [
        [(f"#{delivery.seq}  ", "bold"), safe(delivery.method, "bold magenta", keep_newlines=False), (" ", ""),
         safe(delivery.target, keep_newlines=False), (f"  HTTP/{delivery.http_version}", "")],
        [(f"received {local_time(delivery.received_us, with_date=True)} ({delivery.received_at}) from ", "dim"),
         safe(delivery.remote_addr or "?", "dim"), (f" · {human_size(delivery.size)} · id {delivery.id}", "dim")],
    ]
    if delivery.provider or delivery.verdict:
        sig: Line = [("provider ", "dim"), safe(delivery.provider or "?")]
        if delivery.event_type:
            sig += [("  event ", "dim"), safe(delivery.event_type)]
        if delivery.verdict:
            sig += [("  signature ", "dim"), (delivery.verdict, VERDICT_STYLES.get(delivery.verdict, ""))]
            if delivery.verdict_reason:
                sig += [(": ", ""), safe(delivery.verdict_reason)]
        lines.append(sig)
    if delivery.note:
        lines.append([safe(delivery.note, "yellow")])
    lines += [[], [("Headers", "bold underline")], *headers_lines(delivery.headers.pairs()),
              [], [("Body", "bold underline")], *body_lines(delivery, body_limit, fold_arrays)]
    if delivery.trailers:
        lines += [[], [("Trailers", "bold underline"), ("  after the chunked body", "dim")],
                  *headers_lines(delivery.trailers.pairs())]
    if attempt is not None:
        lines += [[], [("Latest attempt", "bold underline")], *attempt_lines(attempt)]
    return lines


def headers_lines(pairs: list[tuple[str, str]]) -> list[Line]:
    return aligned([(safe(name, "cyan", keep_newlines=False), safe(value, keep_newlines=False)) for name, value in pairs])


def attempt_lines(attempt: Attempt, *, with_response: bool = False) -> list[Line]:
    """One attempt: kind, target, outcome and latency; the error, and the answer's body when it
    failed (or the whole answer, headers and body, `with_response`)."""
    line: Line = [(f"{attempt.number or ''} {attempt.kind} → ", ""), safe_url(attempt.target_url),
                  ("  ", ""), (attempt.outcome, status_style(attempt.outcome))]
    if attempt.latency_ms is not None:
        line.append((f"  {attempt.latency_ms:.1f} ms", "dim"))
    lines = [line]
    if attempt.error_message:
        lines.append([safe(attempt.error_message, "red")])
    response = attempt.response
    if with_response:  # the whole exchange: what was sent (re-signed, perhaps edited), then the answer
        sent = attempt.request
        lines.append([("sent ", "dim"), safe(sent.method, "bold magenta", keep_newlines=False), (" ", ""),
                      safe(sent.url, keep_newlines=False)])
        lines += headers_lines(sent.headers.pairs())
        lines += body_lines(sent)
    if response is not None and with_response:
        lines.append([(f"HTTP/{response.http_version} {response.status} ", "bold"), safe(response.reason, keep_newlines=False)])
        lines += headers_lines(response.headers.pairs())
        if attempt.response_truncated:
            lines.append([("the answer was longer than what was kept", "dim")])
        lines += body_lines(response)
    elif response is not None and not attempt.is_success and response.body:
        lines += body_lines(response)
    return lines


def attempts_table_lines(attempts: list[Attempt]) -> list[Line]:
    """The attempts as an aligned table (ATTEMPT_COLUMNS), oldest first."""
    rows = [[[(name, "bold")] for name in ATTEMPT_COLUMNS], *(attempt_cells(a) for a in attempts)]
    widths = [max(sum(len(text) for text, _ in row[i]) for row in rows) for i in range(len(ATTEMPT_COLUMNS))]
    lines: list[Line] = []
    for row in rows:
        line: Line = []
        for i, cell in enumerate(row):
            pad = widths[i] - sum(len(text) for text, _ in cell)
            right = ATTEMPT_COLUMNS[i] in ("n", "latency")
            line += ([(" " * pad, "")] if right else []) + cell + ([] if right else [(" " * pad, "")]) + [("  ", "")]
        lines.append(line)
    return lines


def queue_lines(items: list[QueueItem]) -> list[Line]:
    """Where a delivery still waits in the forward queue: `queued for URL, next try at 12:00:05 (2 tries)`."""
    lines: list[Line] = []
    for item in items:
        tries = f" ({item.tries} tr{'y' if item.tries == 1 else 'ies'}, last {item.last_outcome})" if item.tries else ""
        if item.state == "pending":
            lines.append([("queued for ", "yellow"), safe_url(item.target, "yellow"),
                          (f", next try at {local_time(item.next_at_us, with_date=True, with_ms=False)}{tries}", "yellow")])
        else:
            lines.append([("gave up on ", "red"), safe_url(item.target, "red"),
                          (f"{tries}; `hookinspect queue retry {item.delivery_seq}` tries again", "red")])
    return lines


ATTEMPT_COLUMNS = ("n", "time", "kind", "target", "outcome", "latency", "error")


def attempt_cells(attempt: Attempt) -> list[Line]:
    """A row of the attempts table, in ATTEMPT_COLUMNS order."""
    return [
        [(str(attempt.number), "")], [(local_time(attempt.started_us), "")], [(attempt.kind, "")],
        [safe_url(attempt.target_url)], [(attempt.outcome, status_style(attempt.outcome))],
        [(f"{attempt.latency_ms:.1f} ms" if attempt.latency_ms is not None else "", "")],
        [safe(attempt.error_message or "", keep_newlines=False)],
    ]


KIND_MARKS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow"), "type_changed": ("~", "magenta")}


def shown_value(value: Any) -> str:
    """A changed value as one escaped line: strings quoted, the rest as JSON."""
    return escape_controls(json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value),
                           keep_newlines=False)


def change_lines(changes: list[Change]) -> list[Line]:
    """Differences as `~ path: old → new` lines, a text diff under a changed body."""
    if not changes:
        return [[("no differences", "green")]]
    lines: list[Line] = []
    for change in changes:
        mark, style = KIND_MARKS.get(change.kind, ("~", "yellow"))
        line: Line = [(f"{mark} ", f"bold {style}"), safe(change.path, "cyan", keep_newlines=False), (": ", "")]
        if change.kind == "added":
            line.append((shown_value(change.new), "green"))
        elif change.kind == "removed":
            line.append((shown_value(change.old), "red"))
        else:
            line += [(shown_value(change.old), "red"), (" → ", ""), (shown_value(change.new), "green")]
            if change.kind == "type_changed":
                line.append((" (type changed)", "dim"))
        lines.append(line)
        for row in (change.detail or "").splitlines():
            style = "green" if row.startswith("+") else "red" if row.startswith("-") else "cyan" if row.startswith("@") else ""
            lines.append([safe(row, style, keep_newlines=False)])
    return lines


REJECTION_COLUMNS = ("time", "from", "status", "request", "reason")


def rejection_cells(rejection: Rejection) -> dict[str, Line]:
    """The cells of an `ls --rejected` row, by column."""
    status = str(rejection.status) if rejection.status else "-"
    reason: Line = [safe(rejection.reason, keep_newlines=False)]
    if rejection.unrecorded_after:
        reason.append((f"  (+{rejection.unrecorded_after} more after it, only counted)", "dim"))
    return {
        "time": [(local_time(rejection.at_us, with_ms=False), "dim")],
        "from": [safe(rejection.remote_addr or "?", keep_newlines=False)],
        "status": [(status, status_style(str(rejection.status) if rejection.status else None))],
        "request": [safe(f"{rejection.method} {rejection.target}".strip() or "(unreadable)", keep_newlines=False)],
        "reason": reason,
    }


# The whole-body view (the TUI's `A`) still stops somewhere: `show --raw` and saving have it all.
SHOW_ALL_LIMIT = 8 * 1024 * 1024
# Longer lines are cut into several, so one huge line stays cheap to draw and scroll.
LONG_LINE = 4000


@dataclass(frozen=True)
class DetailLines:
    """Everything the detail pane shows for one delivery, computed away from the screen."""

    seq: int
    request: list[Line]
    attempts: list[Line]
    signature: list[Line]


def detail_lines(delivery: Delivery, attempts: list[Attempt], report: SignatureReport, queued: list[QueueItem], *,
                 show_all: bool = False) -> DetailLines:
    assert delivery.seq is not None
    limit = SHOW_ALL_LIMIT if show_all else PRETTY_LIMIT
    request = delivery_lines(delivery, body_limit=limit, fold_arrays=not show_all)
    if attempts:
        shown = [*queue_lines(queued), *attempts_table_lines(attempts)]
        for attempt in reversed(attempts):
            shown += [[], *attempt_lines(attempt, with_response=True)]
    else:
        shown = [[("not sent anywhere yet: r replays, R asks for a URL", "dim")], *queue_lines(queued)]
    return DetailLines(delivery.seq, cut_long_lines(request, LONG_LINE), cut_long_lines(shown, LONG_LINE),
                       signature_lines(report))
