"""`slurm mcp` without the optional mcp package says how to install it."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from slurm.cli import main


def test_without_the_mcp_package_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "slurm.cli.mcp_server", None)  # import now raises ImportError
    result = CliRunner().invoke(main, ["mcp", "--backend", "local"])
    assert result.exit_code == 1
    assert "pip install 'slurm-sdk[mcp]'" in result.output
