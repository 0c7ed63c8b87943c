"""Batched squeue/sacct questions, with a recorded stand-in for the cluster."""

from __future__ import annotations

import pytest

from slurm._slurm.commands import JobState
from slurm._slurm.queries import query_ids, query_sacct, query_squeue
from slurm._transport.base import CommandResult
from slurm.errors import CommandError


class Recorder:
    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> CommandResult:
        self.calls.append(argv)
        code, out, err = self.answers.pop(0)
        return CommandResult(argv, code, out, err)


def test_array_elements_are_asked_for_by_array_id() -> None:
    assert query_ids(["7_0", "7_1", "8", "7_2"]) == ["7", "8"]
    run = Recorder((0, "7_0|RUNNING|vm|N/A|N/A|None\n7_1|PENDING|||N/A|Priority\n", ""))
    infos = query_squeue(run, ["7_0", "7_1"])
    assert "--jobs=7" in run.calls[0]
    assert infos["7_0"].state is JobState.RUNNING and infos["7_1"].state is JobState.PENDING


def test_unknown_ids_are_absent_and_other_failures_raise() -> None:
    gone = Recorder((1, "", "slurm_load_jobs error: Invalid job id specified\n"))
    assert query_squeue(gone, ["99"]) == {}
    broken = Recorder((1, "", "slurm_load_jobs error: Unable to contact slurm controller\n"))
    with pytest.raises(CommandError, match="squeue failed"):
        query_squeue(broken, ["99"])


def test_sacct_retries_without_start_time_and_reports_no_accounting() -> None:
    run = Recorder(
        (1, "", "sacct: error: Start time requested is after end time\n"),
        (0, "5|COMPLETED|0:0|vm|2026-01-01T00:00:00|2026-01-01T00:00:01|None\n", ""),
    )
    infos = query_sacct(run, ["5"], since="2030-01-01T00:00:00")
    assert infos is not None and infos["5"].exit_code == 0
    assert any(a.startswith("--starttime") for a in run.calls[0])
    assert not any(a.startswith("--starttime") for a in run.calls[1])
    off = Recorder((1, "", "Slurm accounting storage is disabled\n"))
    assert query_sacct(off, ["5"]) is None
