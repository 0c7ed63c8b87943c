"""Text from the cluster cannot drive the terminal; a password goes only where asked."""

from __future__ import annotations

import pytest

from slurm._terminal import printable
from slurm._transport.sshauth import is_password_prompt
from slurm.cli.jobview import plain, plain_text


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("plain text\nand\ttabs", "plain text\nand\ttabs"),
        ("\x1b]0;window title\x07", "\\x1b]0;window title\\x07"),  # retitles the window
        ("\x1b]52;c;cGF5bG9hZA==\x07", "\\x1b]52;c;cGF5bG9hZA==\\x07"),  # writes the clipboard
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clears the screen
        ("hidden\rshown", "hidden\\x0dshown"),  # overwrites the line
        ("\x9b31m", "\\x9b31m"),  # a C1 control sequence introducer
        ("abc\u202edef", "abc\\u202edef"),  # right-to-left override
        ("naïve ✓", "naïve ✓"),
    ],
)
def test_control_characters_are_shown_as_escapes(given: str, shown: str) -> None:
    assert printable(given) == shown


def test_a_log_keeps_its_carriage_returns_when_asked() -> None:
    assert printable("10%\r90%\x1b[K", keep="\r") == "10%\r90%\\x1b[K"


def test_rich_markup_from_the_cluster_is_printed_as_it_is() -> None:
    out = plain_text(plain("[red]not red[/] [link=http://x]y[/link] \x1b[31m"))
    assert out == "[red]not red[/] [link=http://x]y[/link] \\x1b[31m\n"


@pytest.mark.parametrize(
    ("prompt", "is_password"),
    [
        ("Password: ", True),
        ("password:", True),
        ("alice@login1's password: ", True),
        ("Password for alice: ", True),
        ("One-time password (OATH) for `alice': ", False),
        ("Verification code: ", False),
        ("Enter PASSCODE: ", False),
        ("New password: ", False),
        ("Password (again): ", False),
    ],
)
def test_only_a_password_prompt_gets_the_password(prompt: str, is_password: bool) -> None:
    assert is_password_prompt(prompt) is is_password
