"""The `hookinspect` command: one error boundary around every subcommand."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

from hookinspect import __version__
from hookinspect.cli import (
    check,
    diff,
    export,
    import_,
    listen,
    ls,
    providers,
    queue,
    relay,
    replay,
    rm,
    samples,
    send,
    ui,
    verify,
    web,
)
from hookinspect.cli.output import Output
from hookinspect.errors import HookinspectError

# The command list of --help, whole: click cuts a docstring's first sentence to the terminal's
# width with "…", so each command has a line short enough for an 80-column terminal.
SHORT_HELP = {
    "listen": "Capture webhooks into the store, then answer.",
    "ui": "The terminal UI over the store, live.",
    "web": "The web inspector over the store, live.",
    "ls": "List deliveries, newest first.",
    "show": "One delivery: request, headers, body.",
    "attempts": "Every send of one delivery.",
    "rm": "Delete deliveries (and their attempts).",
    "clear": "Delete every delivery in the store.",
    "verify": "Re-check a delivery's signature and say why.",
    "replay": "Send stored deliveries again, re-signed.",
    "diff": "Compare two deliveries, or two answers.",
    "send": "Send a sample event, signed like its provider.",
    "samples": "The sample events `send` knows.",
    "providers": "The providers and how each is recognised.",
    "export": "Write deliveries as curl, HAR, JSON, fixture.",
    "import": "Load deliveries from HAR, fixture or JSON.",
    "check": "Replay fixtures against a backend (CI).",
    "relay": "Run the relay that public senders post to.",
    "queue": "The forward queue of listen --ack.",
    "channel": "Channels on a relay.",
}


# What an option's value is, as --help names it (typer would print <list[str]> or <float range>).
METAVARS = {"store_path": "FILE", "to": "URL", "target": "URL", "forward_to": "URL", "source": "URL", "relay": "URL",
            "url": "URL", "secret": "PROVIDER=SECRET", "filter_expression": "EXPR", "claim": "EXPR",
            "max_body": "SIZE", "max_header_bytes": "SIZE", "read_timeout": "SECONDS", "timeout": "SECONDS",
            "delay": "SECONDS", "max_age_days": "DAYS", "response_header": "'NAME: VALUE'",
            "set_header": "'NAME: VALUE'", "drop_header": "NAME", "output": "PATH", "junit": "FILE",
            "body_file": "FILE", "token_file": "FILE", "seal_key": "FILE", "allowed_host": "NAME",
            "respond": "GLOB=STATUS[,...]", "events": "GLOBS", "storage_url": "URL", "data": "DIR", "app_spec": "MODULE:APP"}


def readable_options(command: Any) -> None:
    """Options of `command` (and its subcommands) with a metavar that says what the value is,
    and one `[default: …]` (some helps say it themselves)."""
    for param in getattr(command, "params", []):
        if isinstance(param, TyperOption) and not param.is_flag:
            param.metavar = param.metavar or METAVARS.get(param.name or "", (param.name or "value").split("_")[-1].upper())
            if param.help and "[default:" in param.help:
                param.show_default = False
    for sub in getattr(command, "commands", {}).values():
        readable_options(sub)


class ErrorBoundaryGroup(TyperGroup):
    """User-caused errors become one line on stderr and their exit code; bugs still crash."""

    def get_command(self, ctx: typer.Context, name: str) -> Any:
        command = super().get_command(ctx, name)
        if command is not None and name in SHORT_HELP:
            command.short_help = SHORT_HELP[name]
        if command is not None:
            readable_options(command)
        return command



    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HookinspectError as exc:
            if ctx.meta.get("hookinspect.traceback"):
                raise
            Output().error(exc.message, exc.hint)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            Output().info("interrupted")
            ctx.exit(130)


app = typer.Typer(
    cls=ErrorBoundaryGroup,
    no_args_is_help=True,
    add_completion=True,  # --install-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    # Help texts are shown as written: "[secrets]" in a help text is a config table, not markup.
    rich_markup_mode=None,
    help="Capture, inspect, replay, diff and export webhooks.",
)


def _version(value: bool) -> None:
    if value:
        print(f"hookinspect {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    traceback: bool = typer.Option(False, "--traceback", help="Show the full traceback of an error (for bug reports)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.meta["hookinspect.traceback"] = traceback


# Each module declares its commands on a Typer of its own and imports nothing from here,
# so there is no import circle; the order here is the order of `hookinspect --help`.
_COMMAND_MODULES = (listen, ui, web, ls, rm, verify, replay, queue, diff, send, samples, providers, export, import_, check, relay)
for _module in _COMMAND_MODULES:
    app.registered_commands += _module.app.registered_commands
    app.registered_groups += _module.app.registered_groups


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `hookinspect ls | head`: the reader left, that is fine
        sys.stderr.close()
        sys.exit(0)
