"""Settings: defaults < pyproject.toml [tool.hookinspect] / hookinspect.toml < environment < flags.

The file is looked up in the current directory. Environment variables are
HOOKINSPECT_<KEY> (upper case, dashes as underscores), e.g. HOOKINSPECT_PORT=9000.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from hookinspect.errors import UsageError, did_you_mean

CONFIG_FILE = "hookinspect.toml"

# Where `listen` binds unless told otherwise: loopback only, so nothing outside this machine reaches it.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
# Where the web inspector listens (`web`, `listen --web`).
DEFAULT_WEB_PORT = 8788
# Providers cap their payloads well below this (GitHub 25 MB); larger is almost surely a mistake.
DEFAULT_MAX_BODY = 25 * 1024 * 1024

# Every key a settings file may hold; anything else is a typo that would silently do nothing.
KNOWN_KEYS = ("host", "port", "max_body", "max_header_bytes", "max_bodies_in_flight", "max_connections",
              "read_timeout", "workers", "durability", "forward_to", "route", "responses", "secrets", "redact", "diff",
              "providers")


def load_file_config(directory: Path | None = None) -> dict[str, Any]:
    """The [tool.hookinspect] table of pyproject.toml, overridden by hookinspect.toml."""
    directory = directory or Path.cwd()
    merged: dict[str, Any] = {}
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        merged.update(_checked(_read_toml(pyproject).get("tool", {}).get("hookinspect", {}), "[tool.hookinspect] in pyproject.toml"))
    own = directory / CONFIG_FILE
    if own.is_file():
        merged.update(_checked(_read_toml(own), CONFIG_FILE))
    return merged


def _checked(table: dict[str, Any], where: str) -> dict[str, Any]:
    for key in table:
        if key not in KNOWN_KEYS:
            raise UsageError(f"{where}: unknown key {key!r}{did_you_mean(key, KNOWN_KEYS)}", "keys: " + ", ".join(KNOWN_KEYS))
    return table


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path.name}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


class Settings:
    """Resolve one setting through the layers; `flag` wins when it is not None."""

    def __init__(self, file_config: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> None:
        self.file = file_config if file_config is not None else load_file_config()
        self.environ = environ if environ is not None else dict(os.environ)

    def get(self, key: str, flag: Any = None, default: Any = None) -> Any:
        if flag is not None:
            return flag
        env_name = "HOOKINSPECT_" + key.upper().replace("-", "_")
        if env_name in self.environ:
            return self.environ[env_name]
        if key in self.file:
            return self.file[key]
        return default

    def get_int(self, key: str, flag: int | None = None, default: int | None = None) -> int | None:
        value = self.get(key, flag, default)
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise UsageError(f"setting {key} must be a whole number, got {value!r}") from None

    def get_seconds(self, key: str, flag: float | None = None, default: float | None = None) -> float | None:
        """A duration in seconds, finite and at least 0.1 (as the flags take it)."""
        value = self.get(key, flag, default)
        if value is None:
            return None
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not 0.1 <= seconds < 1e9:  # NaN fails this too
            raise UsageError(f"setting {key} must be a number of seconds (0.1 or more), got {value!r}")
        return seconds

    def get_urls(self, key: str) -> list[str]:
        """A setting that holds one URL or a list of them, as given in the file or environment."""
        value = self.get(key)
        if value is None or isinstance(value, str):
            return [value] if value else []
        if not isinstance(value, list) or not all(isinstance(url, str) for url in value):
            raise UsageError(f"setting {key} must be a URL or a list of URLs, got {value!r}")
        return value

    def table(self, key: str) -> Any:
        return self.file.get(key)


def checked_port(port: int) -> int:
    """A port number a socket can bind, or a UsageError (not an OverflowError from deep inside asyncio)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is out of range", "use 1-65535, or 0 for any free port")
    return port
