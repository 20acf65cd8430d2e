"""`shell_quote`: one shell word that means exactly the text, with no raw control characters."""

import subprocess

import pytest

from hookinspect.formats.shell import shell_quote

# Every class of control sequence a terminal acts on, plus shell metacharacters.
HOSTILE = [
    "\x1bc",  # RIS: resets the terminal
    "\x1b[31mred\x1b[0m \x1b[2J",  # CSI: colours, clear screen
    "\x1b]0;title\x07",  # OSC 0: window title
    "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\",  # OSC 8: hyperlink
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: writes the clipboard
    "\x1bP+q544e\x1b\\",  # DCS
    "\x1b_apc\x1b\\",  # APC
    "\x9b31m C1 CSI \x85 NEL",  # C1 controls
    "abc\u202edcba \u2066isolate\u2069",  # bidi overrides
    "bell\x07 back\x08space del\x7f nul-free\ttab\nnewline\r",
    "it's $(rm -rf ~) `x` \"q\" \\ ; | & > *",
    "raw byte \udcff\udc80",  # surrogate-escaped bytes that are not UTF-8
]


def test_printable_text_is_plainly_quoted():
    assert shell_quote("plain") == "plain"
    assert shell_quote("it's") == "'it'\"'\"'s'"


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_has_no_raw_control_bytes_and_means_the_same_bytes(text):
    word = shell_quote(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u2066\u2069" for c in word), repr(word)
    printed = subprocess.run(["bash", "-c", f"printf '%s' {word}"], capture_output=True, check=True).stdout
    assert printed == text.encode("utf-8", "surrogateescape")

