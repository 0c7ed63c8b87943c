"""``slurm dash``: a terminal dashboard of the SDK's jobs, live, locally or over SSH.

Each refresh asks the cluster a fixed number of questions, whatever the number
of jobs: one ``grep`` of the index (every job and its directory, so a
workflow's children hang under it), one batched look at their states
(:func:`slurm.cli.jobs.query_states`: squeue, then sacct), and for the selected
job only its log's tail and its ``why`` answer (:func:`slurm.cli.why.gather_why`,
asked again when its state changes). The other view (``a``) is the user's whole
queue (``squeue --me``) and the partitions' load (``sinfo``). When the
controller does not answer, the last states stay on screen and the status line
says since when.

Keys: ↑/↓ (or k/j) select, ``c`` cancel (``y`` confirms), ``l`` stdout/stderr,
``f`` follow the log (or freeze it), ``/`` filter by name or id (Enter ends),
``s`` cycle the state filter, ``a`` switch views, ``q`` quit.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from slurm import Cluster
from slurm.cli.dashview import (
    QUEUE_FORMAT,
    SINFO_FORMAT,
    STATE_FILTERS,
    Node,
    PartitionLoad,
    QueueRow,
    TreeRow,
    dash_screen,
    parse_queue,
    parse_sinfo,
    tree_nodes,
    tree_rows,
)
from slurm.cli.jobfiles import parse_index_grep
from slurm.cli.jobs import cancel_jobs, cluster_from_options, cluster_options, query_states
from slurm.cli.why import gather_why
from slurm.errors import SlurmError
from slurm.inspect import JobPaths, Snapshot

__all__ = ["Dash", "dash", "split_keys"]

_LOG_BYTES = 16 * 1024


class Dash:
    """The dashboard's state and what each key does; :meth:`screen` draws it."""

    def __init__(self, cluster: Cluster, *, limit: int) -> None:
        self.cluster = cluster
        self.limit = limit
        self.mode = "sdk"
        self.selected = 0
        self.text = ""
        self.state_filter = "all"
        self.stderr = False
        self.follow = True
        self.typing: str | None = None  # the filter being typed
        self.confirm: str | None = None  # a job id waiting for "y"
        self.message = ""
        self.nodes: list[Node] = []
        self.snapshot = Snapshot()
        self.rows: list[TreeRow] = []
        self.queue: list[QueueRow] = []
        self.loads: list[PartitionLoad] = []
        self.last_ok: float | None = None
        self.trouble = ""
        self._why: tuple[str, str, str] | None = None  # job id, state, answer
        self._log = ""

    # --- one refresh: a fixed number of commands ----------------------------------
    def refresh(self) -> None:
        try:
            if self.mode == "queue":
                self._refresh_queue()
            else:
                self._refresh_jobs()
            self.last_ok, self.trouble = time.time(), ""
        except SlurmError as exc:
            since = _dt.datetime.fromtimestamp(self.last_ok) if self.last_ok else None
            when = f"since {since:%H:%M:%S}" if since else "yet"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.trouble = f"the cluster does not answer ({first}): no new states {when}"
        self._rebuild()
        self._refresh_selected()

    def _refresh_jobs(self) -> None:
        index = self.cluster.store.index_dir
        found = self.cluster.transport.run(
            ["grep", "-r", "-F", "-e", "/", "--", index], check=False
        )
        self.nodes = tree_nodes(parse_index_grep(found.stdout, index), limit=self.limit)
        ids = [n.job_id for n in self.nodes]
        self.snapshot = query_states(self.cluster, ids) if ids else Snapshot()

    def _refresh_queue(self) -> None:
        queue = self.cluster.slurm.run(
            ["squeue", "--me", "--noheader", f"--format={QUEUE_FORMAT}"], check=True
        )
        sinfo = self.cluster.slurm.run(["sinfo", "--noheader", f"--format={SINFO_FORMAT}"])
        self.queue, self.loads = parse_queue(queue.stdout), parse_sinfo(sinfo.stdout)

    def _rebuild(self) -> None:
        now = _dt.datetime.now()
        self.rows = tree_rows(
            self.nodes, self.snapshot, now=now, state_filter=self.state_filter, text=self.text
        )
        count = len(self.queue) if self.mode == "queue" else len(self.rows)
        self.selected = max(0, min(self.selected, count - 1))

    def selected_id(self) -> str | None:
        if self.mode == "queue":
            return self.queue[self.selected].job_id if self.queue else None
        return self.rows[self.selected].job_id if self.rows else None

    def _refresh_selected(self) -> None:
        job_id = self.selected_id()
        if job_id is None or self.mode == "queue":
            self._why, self._log = None, ""
            return
        row = self.rows[self.selected]
        if self._why is None or self._why[:2] != (job_id, row.state.text):
            try:
                answer = gather_why(self.cluster, job_id).render()
            except SlurmError as exc:
                answer = f"(no answer: {exc})"
            self._why = (job_id, row.state.text, answer)
        if self.follow or not self._log:
            paths = JobPaths(row.job_dir)
            path = paths.stderr if self.stderr else paths.stdout
            try:
                data, _ = self.cluster.transport.read_range(path, -_LOG_BYTES, _LOG_BYTES)
                self._log = data.decode("utf-8", "replace")
            except (FileNotFoundError, SlurmError):
                self._log = "(no log yet)"

    # --- keys ----------------------------------------------------------------------
    def key(self, key: str) -> bool:
        """Handle one key; False to quit."""
        if self.typing is not None:
            if key in ("\r", "\n"):
                self.text, self.typing = self.typing, None
            elif key == "\x1b":
                self.typing = None
            elif key in ("\x7f", "\b"):
                self.typing = self.typing[:-1]
            elif key.isprintable():
                self.typing += key
            self.selected = 0
            self._rebuild()
            return True
        if self.confirm is not None:
            job_id, self.confirm = self.confirm, None
            if key.lower() == "y":
                try:
                    cancel_jobs(self.cluster, [job_id])
                    self.message = f"cancelled {job_id}"
                except SlurmError as exc:
                    self.message = f"not cancelled: {exc}"
            else:
                self.message = "nothing cancelled"
            return True
        if key == "q":
            return False
        if key in ("\x1b[A", "k"):
            self.selected = max(0, self.selected - 1)
        elif key in ("\x1b[B", "j"):
            self.selected += 1
        elif key == "c" and self.selected_id():
            self.confirm = self.selected_id()
        elif key == "l":
            self.stderr, self._log = not self.stderr, ""
        elif key == "f":
            self.follow = not self.follow
        elif key == "/":
            self.typing = self.text
        elif key == "s":
            index = STATE_FILTERS.index(self.state_filter)
            self.state_filter = STATE_FILTERS[(index + 1) % len(STATE_FILTERS)]
            self.selected = 0
        elif key == "a":
            self.mode, self.selected = ("queue" if self.mode == "sdk" else "sdk"), 0
        self._rebuild()
        if key in ("\x1b[A", "k", "\x1b[B", "j", "l"):
            self._log = ""
            self._refresh_selected()
        return True

    # --- drawing ---------------------------------------------------------------------
    def screen(self, height: int) -> Any:
        prompt = ""
        if self.typing is not None:
            prompt = f"filter: {self.typing}▏ (Enter to keep, Esc to drop)"
        elif self.confirm is not None:
            prompt = f"cancel job {self.confirm}? y/n"
        shown = f"filter {self.text!r} · " if self.text else ""
        unknown = sum(r.state.text == "UNKNOWN" for r in self.rows) if self.mode == "sdk" else 0
        if self.snapshot.accounting is False:  # sacct was asked and failed
            shown += "accounting (sacct) does not answer: ended jobs show their last state · "
        elif unknown:  # squeue forgot them and sacct did not answer for them
            shown += f"{unknown} job(s) Slurm no longer knows: is accounting (sacct) down? · "
        status = self.trouble or (
            f"{shown}state {self.state_filter} · {self.cluster.base_dir} · "
            f"{'log follows' if self.follow else 'log frozen'}"
            + (f" · {self.message}" if self.message else "")
        )
        job_id = self.selected_id()
        detail = self._why[2] if self._why and self._why[0] == job_id else ""
        name = "stderr" if self.stderr else "stdout"
        return dash_screen(
            mode=self.mode,
            rows=self.rows,
            queue=self.queue,
            loads=self.loads,
            selected=self.selected,
            detail=detail or ("(the queue view: a to go back)" if self.mode == "queue" else ""),
            log_title=f"{name} of {job_id}" if job_id else name,
            log_tail=self._log,
            status=status,
            prompt=prompt,
            height=height,
        )


@contextlib.contextmanager
def _keys() -> Iterator[int | None]:
    """stdin in cbreak mode (keys one at a time, no echo), or None when it is no terminal."""
    if not sys.stdin.isatty():
        yield None
        return
    fd = sys.stdin.fileno()
    before = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, before)


def split_keys(data: str) -> list[str]:
    """The keys in what one read returned (a paste, or keys typed between two reads): an
    arrow is one key (``ESC [ A``, or ``ESC O A`` in application mode), any other character
    one."""
    keys = []
    at = 0
    while at < len(data):
        if data.startswith(("\x1b[", "\x1bO"), at) and at + 2 < len(data):
            keys.append("\x1b[" + data[at + 2])
            at += 3
        else:
            keys.append(data[at])
            at += 1
    return keys


def _read_keys(fd: int | None, timeout: float) -> list[str]:
    if fd is None:
        time.sleep(timeout)
        return []
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return []
    return split_keys(os.read(fd, 256).decode("utf-8", "replace"))


@click.command("dash")
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds per refresh.")
@click.option(
    "--limit", "-n", type=click.IntRange(min=1), default=30, show_default=True,
    help="How many of the newest top-level jobs (workflows count once) to show.",
)  # fmt: skip
@cluster_options
def dash(interval: float, limit: int, **options: Any) -> None:
    """A live dashboard of the SDK's jobs: workflows as trees, states, the selected job's
    answer to "why" and its log; keys to cancel, filter and switch to your whole queue."""
    console = Console()
    try:
        with cluster_from_options(options) as cluster:
            board = Dash(cluster, limit=limit)
            board.refresh()
            with (
                _keys() as fd,
                Live(console=console, screen=True, auto_refresh=False) as live,
            ):
                due = time.monotonic() + interval
                while True:
                    live.update(board.screen(console.size.height), refresh=True)
                    keys = _read_keys(fd, max(0.05, due - time.monotonic()))
                    if not all(board.key(key) for key in keys):
                        break
                    if time.monotonic() >= due:
                        board.refresh()
                        due = time.monotonic() + interval
    except SlurmError as exc:
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except KeyboardInterrupt:
        pass
