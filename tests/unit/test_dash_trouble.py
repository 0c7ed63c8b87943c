"""The dashboard keeps its last states and says so when the controller or accounting is down."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from slurm import Cluster
from slurm.cli.dash import Dash
from slurm.errors import CommandError
from slurm.inspect import Snapshot


def _text(board: Dash) -> str:
    out = io.StringIO()
    Console(file=out, width=160, force_terminal=False).print(board.screen(30))
    return out.getvalue()


@pytest.fixture()
def board(tmp_path: Path) -> Dash:
    return Dash(Cluster("local", job_base_dir=str(tmp_path / "jobs")), limit=5)


def test_accounting_that_does_not_answer_is_said(board: Dash) -> None:
    board.snapshot = Snapshot(accounting=False)
    assert "accounting (sacct) does not answer" in _text(board)
    board.snapshot = Snapshot(accounting=True)
    assert "accounting (sacct) does not answer" not in _text(board)


def test_a_controller_that_does_not_answer_keeps_the_last_states(
    board: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise CommandError("squeue: error: Unable to contact slurm controller", argv=["squeue"])

    monkeypatch.setattr(board.cluster.transport, "run", down)
    board.refresh()
    text = _text(board)
    assert "the cluster does not answer" in text and "Unable to contact slurm controller" in text
