"""`slurm dash`'s pure parts: the tree from the index, filters, squeue/sinfo, keys, the screen."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from rich.console import Console

from slurm._slurm.commands import JobInfo, JobState
from slurm.cli.dash import split_keys
from slurm.cli.dashview import (
    Node,
    dash_screen,
    parse_queue,
    parse_sinfo,
    tree_nodes,
    tree_rows,
)
from slurm.cli.jobview import Snapshot

REAL = Path(__file__).parent / "golden" / "real"
B = "/h/jobs"
ENTRIES = {
    "9": f"{B}/flow-20261201-100000-aa",
    "10": f"{B}/flow-20261201-100000-aa/tasks/train-20261201-100001-bb",
    "12": f"{B}/flow-20261201-100000-aa/tasks/train-20261201-100001-bb",  # its retry
    "11": f"{B}/flow-20261201-100000-aa/tasks/sub-20261201-100001-cc",
    "13": f"{B}/flow-20261201-100000-aa/tasks/sub-20261201-100001-cc/tasks/ev-20261201-1-dd",
    "20": f"{B}/add-20261201-110000-ee",
    "21": f"{B}/squares-20261201-110001-ff",
}


def _info(
    job_id: str, state: JobState, start: str | None = None, end: str | None = None
) -> JobInfo:
    return JobInfo(job_id, state, None, None, node="node1", start=start, end=end)


def test_tree_of_the_index_newest_first_children_below() -> None:
    nodes = tree_nodes(ENTRIES, limit=10)
    assert [(n.job_id, n.depth) for n in nodes] == [
        ("21", 0),
        ("20", 0),
        ("9", 0),
        ("11", 1),
        ("13", 2),
        ("12", 1),  # a retried call: its newest id
    ]
    assert [n.job_id for n in tree_nodes(ENTRIES, limit=1)] == ["21"]


def test_rows_states_arrays_folded_and_filters_keep_parents() -> None:
    nodes = tree_nodes(ENTRIES, limit=10)
    snapshot = Snapshot(
        {
            "9": _info("9", JobState.RUNNING, "2026-12-01T10:00:00"),
            "11": _info("11", JobState.RUNNING, "2026-12-01T10:00:01"),
            "13": _info("13", JobState.FAILED, "2026-12-01T10:00:02", "2026-12-01T10:00:07"),
            "12": _info("12", JobState.PENDING),
            "20": _info("20", JobState.COMPLETED, "2026-12-01T11:00:00", "2026-12-01T11:00:03"),
            "21_0": _info("21_0", JobState.COMPLETED),
            "21_1": _info("21_1", JobState.COMPLETED),
            "21_2": _info("21_2", JobState.RUNNING),
        },
        frozenset({"9", "11", "12", "21_2"}),
    )
    now = _dt.datetime(2026, 12, 1, 11, 0, 30)
    rows = tree_rows(nodes, snapshot, now=now)
    by_id = {r.job_id: r for r in rows}
    assert by_id["21"].state.text == "COMPLETED x2, RUNNING x1" and not by_id["21"].state.final
    assert by_id["9"].elapsed == 3630.0 and by_id["13"].elapsed == 5.0
    assert by_id["20"].elapsed == 3.0 and by_id["12"].elapsed is None
    assert by_id["11"].name == "sub"
    failed = tree_rows(nodes, snapshot, now=now, state_filter="failed")
    assert [r.job_id for r in failed] == ["9", "11", "13"]  # with its parents
    assert [r.job_id for r in tree_rows(nodes, snapshot, now=now, text="add")] == ["20"]
    active = tree_rows(nodes, snapshot, now=now, state_filter="active")
    assert [r.job_id for r in active] == ["21", "9", "11", "12"]
    done = tree_rows(nodes, snapshot, now=now, state_filter="completed")
    assert [r.job_id for r in done] == ["20"]


def test_real_squeue_and_sinfo() -> None:
    queue = parse_queue((REAL / "squeue_me_dash.stdout").read_text())
    assert queue[1].job_id == "233" and queue[1].reason == "DependencyNeverSatisfied"
    assert queue[0].partition == "compute" and queue[0].nodes == "node1"
    loads = parse_sinfo((REAL / "sinfo_partitions_load.stdout").read_text())
    assert (loads[0].name, loads[0].nodes, loads[0].cpus) == ("debug*", 2, (1, 7, 0, 8))
    assert parse_sinfo("junk\n|||\na|up|x|1/2/3/4\n") == []


def test_keys_in_one_read() -> None:
    assert split_keys("\x1b[B\x1b[Bl") == ["\x1b[B", "\x1b[B", "l"]
    assert split_keys("\x1bOA/ev\r") == ["\x1b[A", "/", "e", "v", "\r"]
    assert split_keys("\x1b") == ["\x1b"]


def test_screen_renders_the_tree_and_the_selected_job() -> None:
    nodes = [Node("9", 0, f"{B}/flow-1-aa"), Node("10", 1, f"{B}/flow-1-aa/tasks/train-1-bb")]
    rows = tree_rows(nodes, Snapshot({"10": _info("10", JobState.RUNNING)}), now=_dt.datetime.now())
    console = Console(width=120, height=30, record=True, color_system=None)
    console.print(
        dash_screen(
            mode="sdk",
            rows=rows,
            queue=[],
            loads=[],
            selected=1,
            detail="job 10: RUNNING",
            log_title="stdout of 10",
            log_tail="hello from the node\n",
            status="ok",
            prompt="",
            height=30,
        )
    )
    text = console.export_text()
    assert "└ train" in text and "RUNNING" in text and "hello from the node" in text
    assert "job 10: RUNNING" in text and "c cancel" in text
