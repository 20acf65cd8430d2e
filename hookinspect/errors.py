"""User-caused problems: each carries a one-line message, an optional hint and an exit code.

Anything that is not a HookinspectError is a bug and is allowed to crash loudly.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Exit codes are a documented interface (README "Exit codes"): scripts branch on them.
EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, a diff found differences, an attempt failed
EXIT_USAGE = 2  # bad arguments, bad input file, unknown delivery
EXIT_STORE = 3  # the store cannot be opened or written
EXIT_NETWORK = 4  # a port cannot be bound, a target cannot be reached


class HookinspectError(Exception):
    """Base of every error a user can cause; the CLI prints it as one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(HookinspectError):
    exit_code = EXIT_USAGE


class NotFoundError(HookinspectError):
    exit_code = EXIT_USAGE


class StoreError(HookinspectError):
    exit_code = EXIT_STORE


class NetworkError(HookinspectError):
    exit_code = EXIT_NETWORK


class SigningError(UsageError):
    """A secret that cannot sign as its provider does (not hex, not base64, not a private key)."""


class StoreFullError(StoreError):
    """The disk (or the store's size limit) is full: nothing more can be written until space is freed."""


class ScanStopped(UsageError):
    """A scan of bodies passed its deadline, or nobody waits for it any more."""


class StoreBusyError(StoreError):
    """Another process owns the store's writer (`listen` runs on it)."""


def one_line(text: object, limit: int = 300) -> str:
    """Text from an exception or a peer, on one line (runs of whitespace made one space), cut to `limit`."""
    return " ".join(str(text).split())[:limit]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'provider'?)` when a choice is close to `word`, else ""."""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
