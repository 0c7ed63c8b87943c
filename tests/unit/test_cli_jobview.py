"""`slurm jobs` rendering and its watch loop, without a cluster."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from click.testing import CliRunner
from rich.console import Console, RenderableType

from slurm._client.store import parse_job_dir
from slurm._slurm.commands import JobInfo, JobState
from slurm.cli import main
from slurm.cli.jobs import cluster_from_options, watch_loop
from slurm.cli.jobview import (
    JobRow,
    JobView,
    Snapshot,
    StateView,
    describe_state,
    detail_view,
    follow_chunk,
    follow_offset,
    jobs_table,
    outcome_text,
    tail,
)


def _text(renderable: RenderableType) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(renderable)
    return buffer.getvalue()


def _info(job_id: str, state: JobState, exit_code: int | None = None) -> JobInfo:
    return JobInfo(job_id, state, exit_code, 0 if exit_code is not None else None, node="n1")


@pytest.mark.parametrize(
    ("job_dir", "name", "stamp"),
    [
        ("/h/jobs/add-20240501-101500-a1b2c3", "add", dt.datetime(2024, 5, 1, 10, 15)),
        ("/h/jobs/my-task-20240501-101500-a1b2c3/", "my-task", dt.datetime(2024, 5, 1, 10, 15)),
        ("/h/jobs/v2-20241231-235959-000000", "v2", dt.datetime(2024, 12, 31, 23, 59, 59)),
        ("/h/jobs/odd name", "odd name", None),
        ("/h/jobs/add-20241399-101500-a1b2c3", "add", None),  # month 13
    ],
)  # fmt: skip
def test_parse_job_dir(job_dir: str, name: str, stamp: dt.datetime | None) -> None:
    assert parse_job_dir(job_dir) == (name, stamp)


def test_state_of_a_job_from_squeue_and_sacct() -> None:
    snapshot = Snapshot(
        {
            "1": _info("1", JobState.RUNNING),
            "2": _info("2", JobState.COMPLETED, 0),
            "3": _info("3", JobState.PREEMPTED),
            "4": _info("4", JobState.PREEMPTED),
        },
        queued=frozenset({"1", "3"}),
    )
    assert describe_state("1", snapshot) == StateView("RUNNING", False, None, "n1")
    assert describe_state("2", snapshot) == StateView("COMPLETED", True, "0:0", "n1")
    # Preempted and still queued may run again; only accounting knowing it means it is over.
    assert not describe_state("3", snapshot).final
    assert describe_state("4", snapshot).final


def test_state_of_an_array_is_a_summary() -> None:
    snapshot = Snapshot(
        {
            "9_0": _info("9_0", JobState.COMPLETED),
            "9_1": _info("9_1", JobState.FAILED),
            "9_2": _info("9_2", JobState.COMPLETED),
            "9_3": _info("9_3", JobState.RUNNING),
            "90": _info("90", JobState.RUNNING),  # another job, not an element of 9
        },
        queued=frozenset({"9_0", "9_1", "9_2", "9_3", "90"}),
    )
    state = describe_state("9", snapshot)
    assert state.text == "COMPLETED x2, FAILED x1, RUNNING x1"
    assert not state.final
    assert describe_state("9_1", snapshot).text == "FAILED"


def test_state_of_a_job_slurm_forgot() -> None:
    snapshot = Snapshot({}, markers=frozenset({"5"}))
    assert describe_state("5", snapshot) == StateView("ENDED", True)
    assert describe_state("6", snapshot) == StateView("UNKNOWN", True)


def _row(job_id: str, state: str = "RUNNING", final: bool = False) -> JobRow:
    return JobRow(
        job_id,
        "add",
        StateView(state, final),
        dt.datetime(2024, 5, 1, 10, 15),
        f"/h/jobs/add-20240501-101500-{job_id}",
    )


def test_jobs_table() -> None:
    text = _text(jobs_table([_row("12"), _row("11", "COMPLETED", True)], title="jobs in /h/jobs"))
    lines = text.splitlines()
    assert lines[0].strip() == "jobs in /h/jobs"
    header = lines[2].replace("┃", " ").split()
    assert header == ["ID", "NAME", "STATE", "SUBMITTED", "DIRECTORY"]
    assert "12 │ add  │ RUNNING   │ 2024-05-01 10:15:00 │ /h/jobs/add-20240501-101500-12" in text
    assert text.index(" 12 ") < text.index(" 11 ")
    assert "no jobs" in _text(jobs_table([]))


def test_tail() -> None:
    assert tail("a\nb\nc\n\n", 2) == "b\nc"
    assert tail("a\nb", 10) == "a\nb"
    assert tail("a\nb", 0) == ""
    assert tail("", 3) == ""


def test_follow_chunk() -> None:
    assert follow_chunk(0, b"ab") == (b"ab", 2)
    assert follow_chunk(2, b"abcd") == (b"cd", 4)
    assert follow_chunk(4, b"abcd") == (b"", 4)
    assert follow_chunk(4, b"xy") == (b"xy", 2)  # started again (truncated or requeued)


def test_follow_offset() -> None:
    assert follow_offset(0, 2) == 0
    assert follow_offset(2, 4) == 2
    assert follow_offset(4, 4) == 4
    assert follow_offset(4, 2) == 0  # started again (truncated or requeued)


def test_outcome_text_is_one_short_line() -> None:
    assert outcome_text({"a": [1, 2]}) == "{'a': [1, 2]}"
    assert outcome_text("x\ny") == "'x\\ny'"
    long = outcome_text("z" * 500, width=50)
    assert len(long) == 50 and long.endswith("...")


def _view(outcome: tuple[str, str] | None, stdout: str = "out 1\nout 2") -> JobView:
    return JobView(
        row=JobRow(
            "7",
            "train",
            StateView("FAILED", True, "1:0", "node7"),
            None,
            "/h/jobs/train-x",
        ),
        script_path="/h/jobs/train-x/job.sh",
        stdout_path="/h/jobs/train-x/stdout",
        stderr_path="/h/jobs/train-x/stderr",
        stdout_tail=stdout,
        stderr_tail="",
        outcome=outcome,
    )


def test_detail_view() -> None:
    text = _text(detail_view(_view(("error", "ValueError: bad input")), lines=5))
    for expected in (
        "job 7",
        "state      FAILED",
        "exit code  1:0",
        "node       node7",
        "submitted  -",
        "directory  /h/jobs/train-x",
        "script     /h/jobs/train-x/job.sh",
        "error      ValueError: bad input",
        "--- stdout (/h/jobs/train-x/stdout), last 5 lines ---\nout 1\nout 2",
        "--- stderr (/h/jobs/train-x/stderr), last 5 lines ---\n(empty)",
    ):
        assert expected in text
    assert "result     42" in _text(detail_view(_view(("ok", "42")), lines=5))
    unfinished = _text(detail_view(_view(None), lines=5))
    assert "result" not in unfinished and "error " not in unfinished


def test_watch_loop_looks_only_at_unfinished_jobs_until_all_end() -> None:
    rows = [_row("1"), _row("2"), _row("3", "COMPLETED", True)]
    answers = [
        Snapshot(
            {"1": _info("1", JobState.COMPLETED), "2": _info("2", JobState.RUNNING)},
            queued=frozenset({"1", "2"}),
        ),
        Snapshot({"2": _info("2", JobState.FAILED, 1)}),
    ]
    looked: list[list[str]] = []
    shown: list[list[str]] = []
    sleeps: list[float] = []

    def look(ids: list[str]) -> Snapshot:
        looked.append(ids)
        return answers.pop(0)

    final = watch_loop(
        rows,
        look,
        lambda r: shown.append([row.state.text for row in r]),
        interval=0.5,
        sleep=sleeps.append,
    )
    assert looked == [["1", "2"], ["2"]]
    assert shown == [["COMPLETED", "RUNNING", "COMPLETED"], ["COMPLETED", "FAILED", "COMPLETED"]]
    assert sleeps == [0.5]
    assert [row.state.final for row in final] == [True, True, True]


def test_watch_loop_lets_ctrl_c_through() -> None:
    def look(ids: list[str]) -> Snapshot:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        watch_loop([_row("1")], look, lambda rows: None, interval=0.1, sleep=lambda s: None)


def test_cluster_options_map_to_cluster_like_from_args() -> None:
    cluster = cluster_from_options(
        {"hostname": "hpc", "port": 2222, "username": "me", "job_base_dir": "/scratch/jobs"}
    )
    assert (cluster.backend_type, cluster.hostname, cluster.port, cluster.username) == (
        "ssh",
        "hpc",
        2222,
        "me",
    )
    assert cluster.settings.job_base_dir == "/scratch/jobs"
    local = cluster_from_options({"backend": None, "partition": "debug"})
    assert local.backend_type == "local" and local.default_partition == "debug"


@pytest.mark.parametrize("command", ["list", "show", "logs", "cancel", "watch"])
def test_every_command_takes_the_cluster_options(command: str) -> None:
    result = CliRunner().invoke(main, ["jobs", command, "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--backend", "--hostname", "--username", "--port", "--job-base-dir"):
        assert option in result.output


def test_usage_columns_and_details() -> None:
    from slurm._slurm.retry import Attempt
    from slurm._slurm.usage import Usage, summarise

    used = Usage(
        "sacct", queue_wait_s=1.0, elapsed_s=65.0, cpu_time_s=0.8, max_rss_bytes=316 << 20,
        cpus=1, mem_bytes=400 << 20, time_limit_s=120.0, nodes="vm",
    )  # fmt: skip
    state = StateView("COMPLETED", True, "0:0", "vm")
    single = JobRow("7", "train", state, None, "/jobs/train", usage=used)
    array = JobRow("8", "sweep", state, None, "/jobs/sweep", usage=summarise({0: used, 1: used}))
    text = _text(jobs_table([single, array], usage=True))
    assert "MAX RSS" in text and "1m05s" in text and "316 MiB" in text and "79%" in text
    assert "sacct (max of 2)" in text
    assert "MAX RSS" not in _text(jobs_table([single]))
    view = JobView(
        row=single, script_path="s", stdout_path="o", stderr_path="e", stdout_tail="",
        stderr_tail="", usage=used,
        attempts=[
            Attempt("6", "TIMEOUT", {"time": "1"}, None),
            Attempt("7", "COMPLETED", {"time": "0-00:02:00"}, used, rule="measured"),
        ],
    )  # fmt: skip
    detail = _text(detail_view(view, lines=5))
    assert "1m05s of 2m00s (54%)" in detail and "316 MiB of 400 MiB (79%)" in detail
    assert "0.8s of 1 CPU (1%)" in detail and "usage from   sacct" in detail
    assert "TIMEOUT" in detail and "time=0-00:02:00" in detail and "measured" in detail
