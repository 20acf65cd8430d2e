"""The one matcher for patterns people and strangers type: every `~` (`ls --filter`, the TUI
filter bar, the web page's filter, relay claims, routes in `hookinspect.toml`) and diff's
`--ignore` globs.

Python's `re` backtracks: `(a+)+$` over 26 `a`s and a `b` runs for minutes, on whichever
thread or event loop asked. Google's RE2 runs every pattern it accepts in time linear in the
text, and refuses the constructs that cannot be (backreferences, lookaround, possessive and
atomic groups): those are a one-line usage error naming the construct, never a hang.
"""

from __future__ import annotations

import re

import re2

from hookinspect.errors import UsageError

# RE2 builds its automaton within this much memory; a pattern that needs more is refused
# (a{1000}{1000} and the like), so a stranger's claim cannot make the relay allocate at will.
MAX_PATTERN_MEMORY = 8 * 1024 * 1024
MAX_PATTERN_LENGTH = 4096

# What RE2's messages say, and the construct a person would recognise.
_REFUSED = (
    ("(?=", "a lookahead (?=…)"),
    ("(?!", "a negative lookahead (?!…)"),
    ("(?<=", "a lookbehind (?<=…)"),
    ("(?<!", "a negative lookbehind (?<!…)"),
    ("(?P=", "a named backreference (?P=name)"),
    ("(?>", "an atomic group (?>…)"),
    ("++", "a possessive quantifier (++)"),
    ("*+", "a possessive quantifier (*+)"),
    ("?+", "a possessive quantifier (?+)"),
    ("pattern too large", "a pattern too large to run in bounded memory"),
)


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would write its own line to stderr for every refusal
    options.max_mem = MAX_PATTERN_MEMORY
    return options


class Pattern:
    """A compiled pattern that matches in linear time; equal to another of the same text."""

    __slots__ = ("text", "_compiled")

    def __init__(self, text: str, compiled: re2._Regexp) -> None:  # noqa: SLF001
        self.text = text
        self._compiled = compiled

    def search(self, value: str) -> bool:
        """True when the pattern occurs anywhere in `value`."""
        return self._compiled.search(_matchable(value)) is not None

    def fullmatch(self, value: str) -> bool:
        return self._compiled.fullmatch(_matchable(value)) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _matchable(value: str) -> str:
    """RE2 reads UTF-8: a byte kept by surrogateescape (an undecodable header, say) is shown to
    it as U+FFFD, which `.` matches and no literal does."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def compile_pattern(text: str) -> Pattern:
    """Compile `text` for the linear-time matcher; a pattern it cannot run so is a UsageError
    that names the construct."""
    if len(text) > MAX_PATTERN_LENGTH:
        raise UsageError(f"the pattern is {len(text):,} characters long", f"at most {MAX_PATTERN_LENGTH:,}")
    try:
        return Pattern(text, re2.compile(text, _options()))
    except re2.error as exc:
        raise UsageError(f"pattern {text[:80]!r} is refused: {refused_construct(exc)}",
                         "patterns use RE2 syntax (no backreferences or lookaround); "
                         "see https://github.com/google/re2/wiki/Syntax") from None


def refused_construct(exc: re2.error) -> str:
    """The construct RE2 refused, in words."""
    detail = exc.args[0] if exc.args else b""
    message = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    if re.search(r"invalid escape sequence: \\\d", message):
        return "it uses a backreference (\\1, \\2, …), which cannot be matched in linear time"
    for needle, name in _REFUSED:
        if needle in message:
            return f"it uses {name}, which cannot be matched in linear time"
    return message or "RE2 refused it"
