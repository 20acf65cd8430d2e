"""web: the web inspector over the store, in a browser."""

from __future__ import annotations

import asyncio
import secrets
import signal
import webbrowser
from pathlib import Path

import typer
from rich.text import Text

from hookinspect.cli.common import ALLOWED_HOST_OPTION, SECRET_OPTION, STORE_OPTION, gather_secrets
from hookinspect.cli.output import Output
from hookinspect.config import DEFAULT_WEB_PORT, Settings, checked_port
from hookinspect.store.sqlite import default_store_path

app = typer.Typer()  # this module's commands; cli/app.py gathers them



@app.command("web")
def open_web(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback requires the access token it prints."),
    port: int = typer.Option(DEFAULT_WEB_PORT, "--port", "-p", help=f"Port; 0 picks a free one. [default: {DEFAULT_WEB_PORT}]"),
    target: str | None = typer.Option(None, "--target", "--to", help="Where Replay sends. Example: --target localhost:3000/webhooks"),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    secret: list[str] = SECRET_OPTION,
    store_path: Path | None = STORE_OPTION,
    allowed_host: list[str] = ALLOWED_HOST_OPTION,
) -> None:
    """Open the web inspector over the store (it follows what `listen` captures, live)."""
    serve_web(store_path or default_store_path(), host, port, target=target, secret=secret, open_browser=open_browser,
              allowed_hosts=allowed_host)


def serve_web(path: Path, host: str, port: int, *, target: str | None = None, secret: list[str] | None = None,
              open_browser: bool = False, allowed_hosts: list[str] | None = None) -> None:
    """Run the web inspector until Ctrl+C or SIGTERM (also what `listen --web` starts)."""
    # Imported here: the server pulls in aiohttp, which other commands need not load at start-up.
    from hookinspect.formats.targets import validate_target
    from hookinspect.intake.receiver import start_server
    from hookinspect.net.guard import HostRule, is_loopback
    from hookinspect.web.server import WebSettings, create_web_app
    from hookinspect.workspace import Workspace

    out = Output()
    settings = WebSettings(secrets=gather_secrets(secret or []),
                           target=validate_target(target) if target else Settings().get("forward_to"),
                           access_token=None if is_loopback(host) else secrets.token_urlsafe(24), on_error=out.warn,
                           hosts=HostRule.for_bind(host, allowed_hosts or []))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with Workspace(path) as workspace:
            runner, urls = await start_server(create_web_app(workspace, settings), host, checked_port(port))
            query = f"/?token={settings.access_token}" if settings.access_token else "/"
            out.stderr.print(Text.assemble(("hookinspect web ", "bold"), "on ", (urls[0] + query, "bold cyan"),
                                           "  store ", (str(path), "cyan"), ("  (Ctrl+C to stop)", "dim")))
            if settings.access_token:
                out.warn(f"web inspector on {host}: reachable from other machines; only the URL with its token opens it")
            if open_browser:
                webbrowser.open(urls[0] + query)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()

    asyncio.run(run())
