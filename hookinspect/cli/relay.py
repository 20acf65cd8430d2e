"""relay and channel: run the self-hostable relay, and create channels on one."""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import typer
from rich.text import Text

from hookinspect.cli.common import ALLOWED_HOST_OPTION, JSON_OPTION, STORE_OPTION, parse_size
from hookinspect.cli.output import Output
from hookinspect.config import checked_port
from hookinspect.errors import NetworkError, UsageError
from hookinspect.formats.redaction import redact_url
from hookinspect.formats.targets import validate_target
from hookinspect.store.schema import SYNCHRONOUS

if TYPE_CHECKING:
    from hookinspect.relay.storage import RelayStorage

app = typer.Typer()  # this module's commands; cli/app.py gathers them

channel_app = typer.Typer(help="Channels on a relay.", no_args_is_help=True)
app.add_typer(channel_app, name="channel")


@app.command("relay")
def run_relay(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; a public relay needs 0.0.0.0. Example: --host 0.0.0.0"),
    port: int = typer.Option(8080, "--port", "-p", help="Port. Example: --port 8080"),
    data: Path = typer.Option(Path(".hookinspect-relay"), "--data", help="Where deliveries are kept (SQLite, one machine). Example: --data /var/lib/hookinspect-relay"),
    storage_url: str | None = typer.Option(None, "--storage", help="Shared storage for several relay instances instead of --data. Example: --storage redis://127.0.0.1:6379/0"),
    max_body: str = typer.Option("25MiB", "--max-body", help="Largest body accepted (413 beyond)."),
    rate: float = typer.Option(2000.0, "--rate", min=0.1, help="Requests per second per channel and per sending address, sustained (429 beyond)."),
    burst: int = typer.Option(50_000, "--burst", min=1, help="Requests a channel (or a sending address) may send at once before --rate applies. Example: --burst 100000"),
    keep: int = typer.Option(100_000, "--keep", min=1, help="Deliveries kept per channel."),
    max_age_days: float = typer.Option(7.0, "--max-age-days", min=0.01, help="Days a delivery is kept."),
    channels_per_minute: int = typer.Option(10, "--channels-per-minute", min=1, help="Channels one client address may create per minute (429 beyond). Example: --channels-per-minute 30"),
    max_channels: int = typer.Option(10_000, "--max-channels", min=1, help="Channels the relay holds in all (503 beyond). Example: --max-channels 500"),
    max_connections: int | None = typer.Option(None, "--max-connections", min=16, help="Connections open at once; the quietest idle one is closed to make room [default: the file-descriptor limit less 300]"),
    durability: str | None = typer.Option(None, "--durability", help="With --data: power: a sender's 200 means the delivery survives power loss (fsync per commit); process: it survives a crash of the relay only, for lower latency. Example: --durability process [default: power]"),
    trust_proxy: bool = typer.Option(False, "--trust-proxy", help="Take the public URL from X-Forwarded-Proto/-Host (only behind your own reverse proxy)."),
    as_json: bool = typer.Option(False, "--json", help="Say on stdout, as one JSON object per line, when the relay is up (its URLs) and when it stopped."),
    allowed_host: list[str] = ALLOWED_HOST_OPTION,
    log_format: str = typer.Option("text", "--log-format", help="How the log on stderr is written: text, or json (one object a line: time, level, event, message, channel hash, status, latency). Example: --log-format json"),
    log_requests: bool = typer.Option(False, "--log-requests", help="Log every request to a channel and every stream's end (at most 1,000 lines a second). Example: --log-requests"),
    metrics_token: str | None = typer.Option(None, "--metrics-token", envvar="HOOKINSPECT_METRICS_TOKEN", help="/metrics answers only with this token (Authorization: Bearer …); a relay on a public address shows no /metrics without one. HOOKINSPECT_METRICS_TOKEN keeps it out of `ps`."),
    metrics_per_channel: bool = typer.Option(False, "--metrics-per-channel", help="Label the backlog per channel (a short hash of its id): one series per channel with subscribers."),
    drain_seconds: float = typer.Option(10.0, "--drain-seconds", min=0.0, help="On SIGTERM: stop accepting, answer what is in flight, end streams with `restart`, and exit within this. Example: --drain-seconds 20"),
    replicas_ack: int = typer.Option(0, "--replicas-ack", min=0, help="With --storage redis: answer a sender 200 only once this many Redis replicas have the event (WAIT); 503 when they do not in time. Example: --replicas-ack 1"),
    replicas_timeout: float = typer.Option(1.0, "--replicas-timeout", min=0.01, help="Seconds --replicas-ack waits for the replicas before answering 503."),
) -> None:
    """Run the relay: senders POST to /<channel>, subscribers stream it (smee-compatible)."""
    # Imported here: the server pulls in aiohttp, which other commands need not load at start-up.
    from hookinspect.intake.receiver import start_server
    from hookinspect.net.guard import ANY_HOST, HostRule, is_loopback
    from hookinspect.net.server import OutOfFilesReporter
    from hookinspect.relay.log import RelayLog
    from hookinspect.relay.server import RelaySettings, create_relay_app
    out = Output()
    # Every option is checked before the storage opens: a mistyped command leaves nothing behind.
    port = checked_port(port)
    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format {log_format!r}: choose text or json")
    if replicas_ack and storage_url is None:
        raise UsageError("--replicas-ack needs --storage redis://… (or redis+sentinel://…): SQLite has no replicas")
    log = RelayLog(_json_log_line if log_format == "json" else _text_log_line(out), requests=log_requests)
    settings = RelaySettings(max_body=parse_size(max_body), rate_per_second=rate, rate_burst=burst,
                             address_rate_per_second=rate, address_burst=burst,
                             keep_per_channel=keep, max_age_seconds=max_age_days * 86400, trust_proxy=trust_proxy,
                             channels_per_minute=channels_per_minute, max_channels=max_channels, log=log,
                             metrics_token=metrics_token, metrics_open=is_loopback(host),
                             metrics_per_channel=metrics_per_channel, drain_seconds=drain_seconds,
                             # A public bind answers every name unless told which (a page cannot rebind
                             # what it can reach directly); a loopback one only its own and those given.
                             hosts=HostRule.for_bind(host, allowed_host or ([] if is_loopback(host) else [ANY_HOST])))
    storage = open_relay_storage(storage_url, data, durability, replicas_ack, replicas_timeout)
    where = redact_url(storage_url)[0] if storage_url else str(data)

    async def serve() -> None:
        say = functools.partial(log.state, "connections.limit")
        asyncio.get_running_loop().set_exception_handler(OutOfFilesReporter(say))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # before binding: a stop that comes early still stops cleanly
            loop.add_signal_handler(sig, stop.set)
        runner, urls = await start_server(create_relay_app(storage, settings), host, port,
                                          max_connections=max_connections, say=say, shutdown_seconds=drain_seconds)
        if not is_loopback(host):
            log.state("relay.public", f"relay on {host}: reachable from other machines (that is its job; put TLS "
                      "in front of it)" + ("" if metrics_token else "; /metrics is off without --metrics-token"))
        if log_format == "json":
            log.state("relay.started", f"relay on {', '.join(urls)}", level="info", urls=urls, data=where)
        else:
            out.stderr.print(Text.assemble(("hookinspect relay ", "bold"), "on ", (", ".join(urls), "bold cyan"),
                                           "  data ", (where, "cyan"), ("  (Ctrl+C to stop)", "dim")))
        if as_json:
            out.json({"type": "started", "urls": urls, "data": where}, one_line=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            storage.close()
            log.state("relay.stopped", "stopped", level="info")
            if as_json:
                out.json({"type": "stopped"}, one_line=True)

    asyncio.run(serve())


def _json_log_line(record: dict) -> None:
    from hookinspect.relay.log import json_line
    sys.stderr.write(json_line(record) + "\n")
    sys.stderr.flush()


def _text_log_line(out: Output) -> Callable[[dict], None]:
    def show(record: dict) -> None:
        if record["level"] == "warning":
            out.warn(record["message"])
        elif record["event"] != "relay.stopped":  # said on --json's stdout, and by the shell's prompt
            out.info(record["message"])
    return show


def open_relay_storage(url: str | None, data: Path, durability: str | None = None, replicas_ack: int = 0,
                       replicas_timeout: float = 1.0) -> RelayStorage:
    """SQLite in `data`, or the shared store `url` names (redis://, rediss://, unix://, redis+sentinel://)."""
    if durability is not None and durability.lower() not in SYNCHRONOUS:
        raise UsageError(f"--durability {durability!r}: choose power or process")
    if url is None:
        from hookinspect.relay.storage import SqliteRelayStorage
        return SqliteRelayStorage(data, (durability or "power").lower())
    if durability is not None:
        raise UsageError("--durability applies to --data; with --storage, Redis's own persistence decides it "
                         "(appendonly yes, appendfsync always)")
    if not url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        raise UsageError(f"--storage {url!r}: give a Redis URL, e.g. redis://127.0.0.1:6379/0 or "
                         "redis+sentinel://host:26379,host:26380/mymaster/0 (without it, --data is used)")
    from hookinspect.relay.redis_storage import RedisRelayStorage
    return RedisRelayStorage(url, replicas_ack=replicas_ack, replicas_timeout=replicas_timeout)


@channel_app.command("new")
def new_channel(
    relay: str = typer.Option(..., "--relay", help="The relay's base URL. Example: --relay https://relay.example.com"),
    public: bool = typer.Option(False, "--public", help="No token needed to subscribe (as with smee)."),
    sealed: bool = typer.Option(False, "--sealed", help="The relay stores and sends only ciphertext; the private key stays in a 0600 file beside the store."),
    as_json: bool = JSON_OPTION,
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Create a channel: prints its public URL and the token to subscribe with."""
    out = Output()
    base = validate_target(relay).rstrip("/")
    options: dict[str, object] = {"public": public}
    private_key = None
    if sealed:
        from hookinspect.relay.sealing import new_key_pair
        private_key, options["seal_key"] = new_key_pair()
    data = _relay_call("POST", base, f"{base}/api/channels", ("url", "token", "id", "public"), json=options)
    if sealed and not data.get("sealed"):
        raise UsageError(f"the relay at {base} does not seal channels (an older release?): channel {data['id']} "
                         "was made unsealed; do not use it for payloads it must not see")
    key_file = None
    if private_key is not None:
        from hookinspect.relay.sealing import key_path, save_private_key
        from hookinspect.store.sqlite import default_store_path
        key_file = key_path(Path(store_path or default_store_path()), data["id"])
        save_private_key(key_file, private_key)
    if as_json:
        out.json({"url": data["url"], "token": data["token"], "id": data["id"], "public": data["public"],
                  "sealed": sealed, "key_file": str(key_file) if key_file else None})
        return
    out.print(Text.assemble(("channel ", "bold"), (data["url"], "bold cyan")))
    if key_file is not None:
        out.print(Text.assemble(("key     ", "bold"), str(key_file), ("  (private: the relay sees only ciphertext)", "dim")))
    if data["token"]:
        out.print(Text.assemble(("token   ", "bold"), data["token"]))
        # The suggestion keeps the token out of `ps` and shell history: the environment, not a flag.
        out.info(f"HOOKINSPECT_TOKEN=<the token above> hookinspect listen --source {data['url']}")
    else:
        out.info(f"hookinspect listen --source {data['url']}")


CHANNEL_ARGUMENT = typer.Argument(..., help="The channel's URL. Example: https://relay.example.com/AbC…")
TOKEN_OPTION = typer.Option(None, "--token", envvar=["HOOKINSPECT_TOKEN", "HOOKINSPECT_RELAY_TOKEN"],
                            help="The channel's token; HOOKINSPECT_TOKEN keeps it out of `ps`.")


def _channel_call(method: str, channel: str, tail: str, token: str | None, keys: tuple[str, ...] = ()) -> dict:
    """One call to a relay's channel API, or a one-line error saying what the relay said."""
    from hookinspect.intake.subscription import channel_url
    url = channel_url(validate_target(channel))
    base, _, channel_id = url.rpartition("/")
    if not channel_id or "://" not in base:
        raise UsageError(f"{channel!r} is not a channel URL (https://relay.example.com/<channel>)")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _relay_call(method, base, f"{base}/api/channels/{channel_id}/{tail}", keys, headers=headers)


def _relay_call(method: str, base: str, url: str, keys: tuple[str, ...], **kwargs: Any) -> dict:
    """A relay API call's JSON answer (with `keys` in it), or one line: unreachable, refused
    (with the relay's reason), or not a relay of ours at all (a `listen`'s port, say)."""
    from hookinspect.intake.subscription import relay_error
    try:
        response = httpx.request(method, url, timeout=10, **kwargs)
    except httpx.HTTPError as exc:
        reason = re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or type(exc).__name__  # httpx's timeouts say nothing
        raise NetworkError(f"cannot reach the relay at {base}: {reason}") from None
    if response.is_error:
        said = relay_error(response.content) or response.reason_phrase
        raise UsageError(f"the relay answered {response.status_code}: {said}")
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(key in data for key in keys):
        raise UsageError(f"{base} answered {response.status_code}, but not as a hookinspect relay does (JSON)",
                         "give the URL of a `hookinspect relay`, e.g. http://127.0.0.1:8080")
    return data


@channel_app.command("claims")
def show_claims(channel: str = CHANNEL_ARGUMENT, token: str | None = TOKEN_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Who claims what on a channel (listen --claim), and when each was last connected."""
    import time

    from rich.table import Table

    from hookinspect.cli.output import add_columns, safe_text
    out = Output()
    claims = _channel_call("GET", channel, "claims", token, ("claims",))["claims"]
    if as_json:
        out.json(claims)
        return
    if not claims:
        out.info("nobody claims anything: every subscriber gets every delivery")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    add_columns(table, ("subscriber", "claims", "last connected"), prose=("claims",))
    for claim in claims:
        what = claim["claim"] or ""
        if claim["default"]:
            what = (what + " + " if what else "") + "what nobody claims"
        age = time.time() - claim["seen_at"]
        seen = f"{age / 3600:.1f} h ago" if age >= 3600 else f"{age / 60:.0f} min ago"
        table.add_row(safe_text(claim["subscriber"]), safe_text(what),
                      Text(seen + ("  (lapsed: ignored)" if claim["expired"] else ""), style="dim"))
    out.print(table)


@channel_app.command("release")
def release_claim(channel: str = CHANNEL_ARGUMENT,
                  subscriber: str = typer.Option(..., "--subscriber", help="Whose claim ends. Example: --subscriber ana"),
                  token: str | None = TOKEN_OPTION, as_json: bool = JSON_OPTION) -> None:
    """End a subscriber's claim: what it claimed goes to the others (or the default) from now on."""
    from urllib.parse import quote
    out = Output()
    answer = _channel_call("DELETE", channel, f"claims/{quote(subscriber, safe='')}", token, ("released",))
    if as_json:
        out.json(answer)
    else:
        out.print(Text.assemble("released ", (subscriber, "bold")))
