"""What ``slurm dash`` shows, as pure functions: the index and Slurm's answers in, rows and
rich renderables out.

The SDK's jobs are drawn as trees: a workflow's children (their directories lie
under its ``tasks/``) below it, an array as one row with its elements counted by
state (:func:`slurm.cli.jobview.describe_state`). The other view is the user's
whole queue (``squeue --me``) with the partitions' load (``sinfo``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from slurm.cli.jobfiles import parent_of
from slurm.cli.jobview import StateView, describe_state, plain
from slurm.inspect import Snapshot, format_seconds, parse_job_dir

__all__ = [
    "STATE_FILTERS",
    "Node",
    "PartitionLoad",
    "QueueRow",
    "TreeRow",
    "dash_screen",
    "parse_queue",
    "parse_sinfo",
    "tree_nodes",
    "tree_rows",
]

#: What the ``s`` key cycles through.
STATE_FILTERS = ("all", "active", "failed", "completed")
QUEUE_FORMAT = "%i|%j|%T|%P|%N|%M|%r"
SINFO_FORMAT = "%P|%a|%D|%C"

_STYLES = {"COMPLETED": "green", "RUNNING": "cyan", "PENDING": "yellow", "REQUEUED": "yellow"}


@dataclass(frozen=True)
class Node:
    """One call in the tree: its newest job id, depth and directory."""

    job_id: str
    depth: int
    job_dir: str


@dataclass(frozen=True)
class TreeRow:
    """One line of the dashboard's tree."""

    job_id: str
    depth: int
    name: str
    state: StateView
    elapsed: float | None
    job_dir: str


@dataclass(frozen=True)
class QueueRow:
    """One line of ``squeue --me`` (``QUEUE_FORMAT``)."""

    job_id: str
    name: str
    state: str
    partition: str
    nodes: str
    elapsed: str
    reason: str


@dataclass(frozen=True)
class PartitionLoad:
    """One partition from ``sinfo`` (``SINFO_FORMAT``): CPUs allocated, idle, other, total."""

    name: str
    available: str
    nodes: int
    cpus: tuple[int, int, int, int]


def tree_nodes(entries: Mapping[str, str], *, limit: int) -> list[Node]:
    """The ``limit`` newest top-level calls of the index (``{job id: directory}``), each
    followed by what it submitted, depth first; a retried call is its newest id."""
    newest: dict[str, str] = {}
    for job_id, job_dir in entries.items():
        if job_dir not in newest or int(job_id) > int(newest[job_dir]):
            newest[job_dir] = job_id
    dirs = list(newest)
    children: dict[str | None, list[str]] = {}
    for job_dir in dirs:
        children.setdefault(parent_of(job_dir, dirs), []).append(job_dir)
    roots = sorted(children.get(None, []), key=lambda d: -int(newest[d]))[:limit]
    nodes: list[Node] = []

    def add(job_dir: str, depth: int) -> None:
        nodes.append(Node(newest[job_dir], depth, job_dir))
        for child in sorted(children.get(job_dir, []), key=lambda d: int(newest[d])):
            add(child, depth + 1)

    for root in roots:
        add(root, 0)
    return nodes


def _seconds(info_start: str | None, info_end: str | None, now: _dt.datetime) -> float | None:
    try:
        start = _dt.datetime.fromisoformat(info_start) if info_start else None
        end = _dt.datetime.fromisoformat(info_end) if info_end else None
    except ValueError:
        return None
    if start is None:
        return None
    return max(((end if end and end <= now else now) - start).total_seconds(), 0.0)


def _matches(row: TreeRow, state_filter: str, text: str) -> bool:
    # "COMPLETED x2, FAILED x1" (an array) has two states
    states = {part.split()[0] for part in row.state.text.split(", ") if part.split()}
    ok = states <= {"COMPLETED", "ENDED"}
    if state_filter == "active" and row.state.final:
        return False
    if state_filter == "failed" and (not row.state.final or ok):
        return False
    if state_filter == "completed" and not (row.state.final and ok):
        return False
    return not text or text.lower() in f"{row.job_id} {row.name}".lower()


def tree_rows(
    nodes: Sequence[Node],
    snapshot: Snapshot,
    *,
    now: _dt.datetime,
    state_filter: str = "all",
    text: str = "",
) -> list[TreeRow]:
    """The tree's rows with their states; a filter keeps matching rows and their parents."""
    rows = []
    for node in nodes:
        info = snapshot.infos.get(node.job_id)
        name, _ = parse_job_dir(node.job_dir)
        elapsed = _seconds(info.start, info.end, now) if info else None
        rows.append(
            TreeRow(
                node.job_id,
                node.depth,
                name,
                describe_state(node.job_id, snapshot),
                elapsed,
                node.job_dir,
            )
        )
    if state_filter == "all" and not text:
        return rows
    keep = [False] * len(rows)
    for index, row in enumerate(rows):
        if _matches(row, state_filter, text):
            keep[index] = True
            depth = row.depth
            for back in range(index - 1, -1, -1):  # its parents, for context
                if rows[back].depth < depth:
                    keep[back] = True
                    depth = rows[back].depth
    return [row for row, kept in zip(rows, keep, strict=True) if kept]


def parse_queue(stdout: str) -> list[QueueRow]:
    """``squeue --me --noheader --format=QUEUE_FORMAT`` output (the reason last)."""
    rows = []
    for line in stdout.splitlines():
        fields = line.strip().split("|", 6)
        if len(fields) == 7 and fields[0]:
            rows.append(QueueRow(*(f.strip() for f in fields)))
    return rows


def parse_sinfo(stdout: str) -> list[PartitionLoad]:
    """``sinfo --noheader --format=SINFO_FORMAT`` output: ``debug*|up|2|1/7/0/8``."""
    loads = []
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4:
            continue
        cpus = fields[3].split("/")
        if len(cpus) != 4 or not all(c.isdigit() for c in cpus) or not fields[2].isdigit():
            continue
        a, i, o, t = (int(c) for c in cpus)
        loads.append(PartitionLoad(fields[0], fields[1], int(fields[2]), (a, i, o, t)))
    return loads


def _state(text: str, final: bool) -> Text:
    first = text.split()[0].rstrip(",") if text else ""
    return Text(text, style=_STYLES.get(first, "red" if final and first != "ENDED" else ""))


def _tree_table(rows: Sequence[TreeRow], selected: int, height: int) -> Table:
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", no_wrap=True, width=10)
    table.add_column("NAME", no_wrap=True, ratio=3)
    table.add_column("STATE", no_wrap=True, ratio=2)
    table.add_column("NODE", no_wrap=True, width=12)
    table.add_column("ELAPSED", no_wrap=True, justify="right", width=8)
    first = max(0, min(selected - height // 2, len(rows) - height))
    for index, row in enumerate(rows[first : first + height], first):
        indent = "  " * row.depth + ("└ " if row.depth else "")
        table.add_row(
            row.job_id,
            indent + row.name,
            _state(row.state.text, row.state.final),
            row.state.node or "-",
            format_seconds(row.elapsed),
            style="reverse" if index == selected else "",
        )
    if not rows:
        table.add_row("", "no jobs (a filter? press s or / to change it)", "", "", "")
    return table


def _queue_table(rows: Sequence[QueueRow], loads: Sequence[PartitionLoad], selected: int) -> Group:
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold")
    for name in ("ID", "NAME", "STATE", "PARTITION", "NODES", "TIME", "REASON"):
        table.add_column(name, no_wrap=True)
    for index, row in enumerate(rows):
        table.add_row(
            row.job_id, row.name, _state(row.state, False), row.partition, row.nodes,
            row.elapsed, row.reason, style="reverse" if index == selected else "",
        )  # fmt: skip
    load = Table(box=None, header_style="bold", title="partitions", title_justify="left")
    for name in ("PARTITION", "STATE", "NODES", "CPUS BUSY", "IDLE", "TOTAL"):
        load.add_column(name)
    for part in loads:
        a, i, _, t = part.cpus
        load.add_row(part.name, part.available, str(part.nodes), str(a), str(i), str(t))
    return Group(table, Text(""), load)


def dash_screen(
    *,
    mode: str,
    rows: Sequence[TreeRow],
    queue: Sequence[QueueRow],
    loads: Sequence[PartitionLoad],
    selected: int,
    detail: str,
    log_title: str,
    log_tail: str,
    status: str,
    prompt: str,
    height: int,
) -> RenderableType:
    """The whole screen, ``height`` lines: the jobs, the selected job's answer and log, the
    keys. Each part gets a share of the height, so the status line is always on screen."""
    why_height = min(len(detail.splitlines()) + 3, max(4, height // 4))
    list_height = max(5, (height - why_height - 2) * 6 // 10)
    if mode == "queue":
        body: RenderableType = _queue_table(queue, loads, selected)
        title = f"your queue ({len(queue)} job(s))"
    else:
        body = _tree_table(rows, selected, max(1, list_height - 3))
        title = f"the SDK's jobs ({len(rows)} shown)"
    log_lines = max(1, height - list_height - why_height - 4)
    log = "\n".join(log_tail.splitlines()[-log_lines:])
    keys = (
        "↑/↓ select  c cancel  l stdout/stderr  f follow  / filter  s state filter  "
        "a SDK jobs/queue  q quit"
    )
    layout = Layout()
    layout.split_column(
        Layout(Panel(body, title=title, title_align="left"), name="jobs", size=list_height),
        Layout(Panel(plain(detail), title="why", title_align="left"), name="why", size=why_height),
        Layout(Panel(plain(log), title=log_title, title_align="left"), name="log"),
        Layout(
            Group(
                Text(
                    prompt or status,
                    style="bold yellow" if prompt else "dim",
                    overflow="ellipsis",
                    no_wrap=True,
                ),
                Text(keys, style="dim", overflow="ellipsis", no_wrap=True),
            ),
            name="keys",
            size=2,
        ),
    )
    return layout
