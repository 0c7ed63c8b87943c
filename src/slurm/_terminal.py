"""Text from elsewhere made safe to print on a terminal.

Logs, error messages, job names and SSH servers' prompts come from the cluster, and
from whatever the jobs read: an escape sequence among them could retitle the window,
clear the screen, hide lines, rewrite the clipboard (OSC 52) or reverse text (bidi
controls). :func:`printable` shows each such character as a visible escape instead (the
command line also escapes rich's ``[...]`` markup in such text).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides
# and isolates (U+202A-U+202E, U+2066-U+2069).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep: str = "") -> str:
    """``text`` with every control character but tab, newline and those in ``keep``
    shown as an escape (``\\x1b``), so that printing it cannot drive the terminal.

    Example::

        >>> printable("ok \\x1b]0;owned\\x07 done")
        'ok \\\\x1b]0;owned\\\\x07 done'
        >>> printable("50%\\r80%", keep="\\r")
        '50%\\r80%'
    """
    if keep:
        return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _visible(m), text)
    return _UNSAFE.sub(_visible, text)
