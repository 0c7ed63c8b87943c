"""The bar of long transfers: drawn for large ones on a terminal, never for small ones."""

from __future__ import annotations

import io

from rich.console import Console

from slurm._transport.progress import LARGE_TRANSFER, terminal_progress


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100), out


def test_a_large_transfer_draws_bytes_and_rate_until_done() -> None:
    console, out = _console(True)
    report = terminal_progress(console=console)
    total = 2 * LARGE_TRANSFER
    for done in range(0, total + 1, LARGE_TRANSFER // 2):
        report("env.tar.gz", done, total)
    text = out.getvalue()
    assert "env.tar.gz" in text and "16.8" in text and "MB" in text


def test_a_small_transfer_or_a_log_file_gets_no_bar() -> None:
    console, out = _console(True)
    terminal_progress(console=console)("small", 10, 100)
    assert out.getvalue() == ""
    console, out = _console(False)
    terminal_progress(console=console)("large", LARGE_TRANSFER, LARGE_TRANSFER)
    assert out.getvalue() == "" or "large" not in out.getvalue()
