"""Settings: defaults < pyproject.toml [tool.hookinspect] / hookinspect.toml < environment < flags.

The file is looked up in the current directory. Environment variables are
HOOKINSPECT_<KEY> (upper case, dashes as underscores), e.g. HOOKINSPECT_PORT=9000.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookinspect.errors import UsageError, did_you_mean, one_line

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


# A settings file is a few lines; a larger one is a mistake (or somebody else's file).
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Setting:
    """What one setting holds: its kind and range, the same for a flag, the file and the environment."""

    kind: str  # "int", "seconds", "size" or "choice"
    low: float = 0
    high: float = float("inf")
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "seconds":
            return f"a number of seconds, {self.low:g} or more"
        if self.kind == "size":
            return f"a size in bytes (25MiB, 512k, 1048576), {int(self.low):,} or more"
        top = "" if self.high == float("inf") else f"–{int(self.high)}"
        return f"a whole number {int(self.low)}{top}" if top else f"a whole number, {int(self.low)} or more"


# One schema for every setting with a type (flags, hookinspect.toml, HOOKINSPECT_* variables).
SCHEMA: dict[str, Setting] = {
    "port": Setting("int", 0, 65535),
    "workers": Setting("int", 1),  # the ceiling depends on the machine: listen says so
    "max_connections": Setting("int", 16, 10_000_000),
    "read_timeout": Setting("seconds", 0.1, 1e9),
    "max_body": Setting("size", 1),
    "max_header_bytes": Setting("size", 1024),
    "max_bodies_in_flight": Setting("size", 1),
    "durability": Setting("choice", choices=("power", "process")),
}


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
    """A settings file as a table; anything that is not one (not UTF-8, not TOML, nested absurdly
    deep, absurdly large) is one line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UsageError(f"{path.name} is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a settings file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path.name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                         "save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path.name}: {one_line(exc)}") from None
    except RecursionError:
        raise UsageError(f"{path.name} nests arrays or tables too deeply to be a settings file") from None


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

    def checked(self, key: str, flag: Any = None, default: Any = None) -> Any:
        """The setting's value through the layers, checked against SCHEMA (one message for a
        flag, the file and the environment alike)."""
        value = self.get(key, flag, default)
        return None if value is None else check_setting(key, value)

    def get_int(self, key: str, flag: int | None = None, default: int | None = None) -> int | None:
        return self.checked(key, flag, default)

    def get_seconds(self, key: str, flag: float | None = None, default: float | None = None) -> float | None:
        return self.checked(key, flag, default)

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


def check_setting(key: str, value: Any) -> Any:
    """`value` as SCHEMA[key] says it must be, or a UsageError naming the key and the range."""
    setting = SCHEMA[key]
    name = key.replace("_", "-")
    refused = UsageError(f"{name} must be {setting.describe()}, got {one_line(repr(value), 80)}")
    if setting.kind == "choice":
        if not isinstance(value, str) or value.lower() not in setting.choices:
            raise refused
        return value.lower()
    if setting.kind == "size":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise refused
        try:
            number = parse_size(str(value))
        except UsageError:
            raise refused from None
    elif setting.kind == "int":
        number = _whole_number(value)
        if number is None:
            raise refused
    else:  # seconds
        if isinstance(value, bool):
            raise refused
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise refused from None
        if not math.isfinite(number):
            raise refused
    if not setting.low <= number <= setting.high:
        raise refused
    return number


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_SIZE = re.compile(r"\s*(\d{1,15}(?:\.\d{1,9})?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """`25MiB`, `10MB`, `512k`, `1048576` -> bytes."""
    match = _SIZE.fullmatch(text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise UsageError(f"cannot read size {one_line(repr(text), 80)}", "examples: 25MiB, 10MB, 512k, 1048576")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _whole_number(value: Any) -> int | None:
    """An int, or a string of digits; not a bool, not 1.5, not "1.5"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    return None


def checked_port(port: int) -> int:
    """A port number a socket can bind, or a UsageError (not an OverflowError from deep inside asyncio)."""
    return check_setting("port", port)
