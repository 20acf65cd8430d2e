"""The `hookinspect` command: one error boundary around every subcommand."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

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


class ErrorBoundaryGroup(TyperGroup):
    """User-caused errors become one line on stderr and their exit code; bugs still crash."""

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
