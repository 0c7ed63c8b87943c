"""``slurm mcp``: the SDK's jobs as tools of a Model Context Protocol server, over stdio.

An assistant (Claude Desktop, an IDE, any MCP client) starts ``slurm mcp
--hostname ...`` and gets seven tools: ``list_jobs``, ``show_job``,
``job_logs`` (follows a running job), ``job_result``, ``cancel_jobs``,
``list_partitions`` and ``list_environments`` (the Slurmfile's), and the
earlier SDK's resources ``slurm://queue``, ``slurm://partitions``,
``slurm://config`` (JSON) and ``slurm://jobs/{id}``.
They are the ``slurm jobs`` commands over the same pieces
(:func:`slurm.cli.jobs.query_states`, the renderers of
:mod:`slurm.cli.jobview`, :meth:`Cluster.get_job`, the job store and
``cluster.slurm.cancel``): same ids, same states, same output, as plain text.

Needs the ``mcp`` package: ``pip install 'slurm-sdk[mcp]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from slurm import Cluster
from slurm.cli.clusters import environments_table
from slurm.cli.clusterview import partitions_table
from slurm.cli.jobs import (
    cancel_jobs,
    job_view,
    list_rows,
    query_states,
    read_outcome,
)
from slurm.cli.jobview import (
    JobView,
    describe_state,
    detail_view,
    follow_offset,
    jobs_table,
    tail,
)
from slurm.cli.jobview import plain_text as _plain
from slurm.errors import SlurmError

__all__ = ["MAX_FOLLOW_SECONDS", "MAX_LOG_BYTES", "JobTools", "build_server"]

#: The most log bytes one ``job_logs`` call returns; the rest comes with the next offset.
MAX_LOG_BYTES = 64 * 1024
#: The longest one ``job_logs(follow=True)`` call waits for a job (clients time out).
MAX_FOLLOW_SECONDS = 600.0

_INSTRUCTIONS = (
    "Tools over the Slurm jobs that slurm-sdk submitted under one job base directory "
    "({base_dir}). Job ids are Slurm's (an array element is ID_INDEX). States come from "
    "one batched squeue/sacct look. job_logs returns an offset: pass it back to get only "
    "what was written since; with follow=true it waits (up to timeout seconds) until the "
    "job ends. cancel_jobs cancels only the SDK's own jobs."
)


class JobTools:
    """The tools' logic over one :class:`Cluster`; every call returns plain text.

    Calls are serialised (one cluster connection, used from the server's
    worker threads one at a time). An SDK error becomes a ``ToolError`` whose
    message, the SDK's own, says what to do.
    """

    def __init__(self, cluster: Cluster, *, poll_interval: float = 1.0) -> None:
        self.cluster = cluster
        self.poll_interval = poll_interval
        self._lock = threading.Lock()

    def list_jobs(self, limit: int = 20) -> str:
        """The newest jobs of the SDK: id, name, state, submitted time, job directory."""
        _check(limit >= 1, f"limit must be at least 1, not {limit}")
        with self._lock, _as_tool_error():
            rows = list_rows(self.cluster, limit)
        return _plain(jobs_table(rows, title=f"jobs in {self.cluster.base_dir}"))

    def show_job(self, job_id: str, lines: int = 20) -> str:
        """State, exit code, node, paths, result or error, and the last lines of both logs."""
        _check(lines >= 0, f"lines must be 0 or more, not {lines}")
        return _plain(detail_view(self._view(job_id, lines), lines=lines))

    def job_result(self, job_id: str) -> str:
        """The outcome: the returned value's repr, or the error with its remote traceback."""
        view = self._view(job_id, 20)
        state = view.row.state
        head = f"job {job_id} ({view.row.name}): {state.text}"
        if state.exit_code:
            head += f", exit code {state.exit_code}"
        if view.outcome is None:
            if state.final:
                return f"{head}\nno result: the job ended without writing one\n" + _stderr(view)
            return f"{head}\nno result yet: the job has not finished"
        kind, text = view.outcome
        if kind == "ok":
            return f"{head}\nresult: {text}"
        with self._lock, _as_tool_error():
            outcome = read_outcome(self.cluster, self.cluster.get_job(job_id, track=False))
        trace = outcome.traceback.rstrip() if outcome is not None else ""
        trace = f"remote traceback:\n{tail(trace, 30)}\n" if trace else ""
        return f"{head}\nerror: {text}\n{trace}" + _stderr(view)

    def job_logs(
        self,
        job_id: str,
        stream: Literal["stdout", "stderr"] = "stdout",
        offset: int = 0,
        follow: bool = False,
        timeout: float = 60.0,
    ) -> str:
        """What the job wrote to ``stream`` from byte ``offset`` on.

        With ``follow``, keeps reading until the job ends or ``timeout``
        seconds pass. The last line gives the job's state and the offset to
        pass next time.
        """
        _check(stream in ("stdout", "stderr"), f"stream must be stdout or stderr, not {stream!r}")
        _check(offset >= 0, f"offset must be 0 or more, not {offset}")
        _check(
            0 <= timeout <= MAX_FOLLOW_SECONDS,
            f"timeout must be between 0 and {MAX_FOLLOW_SECONDS:g} seconds, not {timeout}",
        )
        with self._lock, _as_tool_error():
            job = self.cluster.get_job(job_id, track=False)
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        seen, size = offset, 0
        path = job.stderr_path if stream == "stderr" else job.stdout_path
        length = 0
        while True:
            with self._lock, _as_tool_error():
                # The state first: a log read after the job ended is complete.
                state = describe_state(job_id, query_states(self.cluster, [job_id]))
                # Only the new bytes, at most what this answer still has room for.
                new, length = _read_from(self.cluster, path, seen, MAX_LOG_BYTES - size)
                if follow_offset(seen, length) != seen:  # it shrank: from its start
                    seen = 0
                    new, length = _read_from(self.cluster, path, 0, MAX_LOG_BYTES - size)
            seen += len(new)
            chunks.append(new)
            size += len(new)
            full = size >= MAX_LOG_BYTES
            if full or not follow or state.final or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_interval)
        text = b"".join(chunks).decode(errors="replace")
        more = seen < length
        if state.final and not more:
            status = f"job {state.text}; the {stream} is complete"
        elif more:
            status = f"job {state.text}; more {stream} follows: call again with offset={seen}"
        else:
            status = f"job {state.text}; call again with offset={seen} for what it writes next"
        tail = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{tail}[{stream} of job {job_id}: bytes {offset}..{seen}; {status}]"

    def cancel_jobs(self, job_ids: list[str]) -> str:
        """Cancel these jobs (one scancel); refuses, cancelling nothing, if one is not the SDK's."""
        _check(bool(job_ids), "give at least one job id (see list_jobs)")
        with self._lock, _as_tool_error():
            cancel_jobs(self.cluster, job_ids)
        return f"cancelled {', '.join(job_ids)}"

    def list_partitions(self) -> str:
        """The partitions: nodes by state, CPUs in use, your running and pending jobs in each
        (``*`` marks the default partition)."""
        with self._lock, _as_tool_error():
            info, queue = self.cluster.get_cluster_info(), self.cluster.get_queue()
        return _plain(partitions_table(info["partitions"], queue, title="partitions"))

    def list_environments(self) -> str:
        """The environments of the Slurmfile (``$SLURMFILE`` or the nearest one): where each
        submits, its partition and job base directory."""
        with _as_tool_error():
            return _plain(environments_table())

    # --- resources (JSON) ----------------------------------------------------------
    def queue(self) -> str:
        """Your jobs in Slurm's queue (``squeue --me``), with the earlier SDK's keys."""
        with self._lock, _as_tool_error():
            return json.dumps(self.cluster.get_queue(), indent=1)

    def partitions(self) -> str:
        """The partitions (``sinfo``), with the earlier SDK's keys."""
        with self._lock, _as_tool_error():
            return json.dumps(self.cluster.get_cluster_info(), indent=1)

    def config(self) -> str:
        """The server's cluster: its settings (never the password) and job base directory."""
        settings = dataclasses.asdict(self.cluster.settings)
        settings.pop("password", None)
        with self._lock, _as_tool_error():
            settings["job_base_dir"] = self.cluster.base_dir
        return json.dumps(settings, indent=1, default=str)

    def _view(self, job_id: str, lines: int) -> JobView:
        with self._lock, _as_tool_error():
            return job_view(self.cluster, job_id, lines)


def _read_from(cluster: Cluster, path: str, offset: int, limit: int) -> tuple[bytes, int]:
    """At most ``limit`` bytes of a log from ``offset``, and its size (0 before it exists)."""
    try:
        return cluster.transport.read_range(path, offset, limit)
    except FileNotFoundError:
        return b"", 0


def _stderr(view: JobView) -> str:
    return f"last lines of stderr ({view.stderr_path}):\n{view.stderr_tail or '(empty)'}"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ToolError(message)


@contextlib.contextmanager
def _as_tool_error() -> Iterator[None]:
    """Turns an SDK error into a ``ToolError`` carrying its message, for the model to read."""
    try:
        yield
    except SlurmError as exc:
        raise ToolError(str(exc)) from exc


def build_server(cluster: Cluster, *, poll_interval: float = 1.0) -> MCPServer[Any]:
    """An MCP server whose tools act on ``cluster``'s jobs; ``.run("stdio")`` serves it
    (``.run("streamable-http", host=..., port=...)`` over HTTP)."""
    tools = JobTools(cluster, poll_interval=poll_interval)
    server: MCPServer[Any] = MCPServer(
        name="slurm-sdk",
        instructions=_INSTRUCTIONS.format(base_dir=cluster.base_dir),
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    server.add_tool(tools.list_jobs, name="list_jobs", annotations=read_only)
    server.add_tool(tools.show_job, name="show_job", annotations=read_only)
    server.add_tool(tools.job_result, name="job_result", annotations=read_only)
    server.add_tool(tools.job_logs, name="job_logs", annotations=read_only)
    server.add_tool(tools.list_partitions, name="list_partitions", annotations=read_only)
    server.add_tool(tools.list_environments, name="list_environments", annotations=read_only)
    json_type = "application/json"
    server.resource("slurm://queue", name="queue", mime_type=json_type)(tools.queue)
    server.resource("slurm://partitions", name="partitions", mime_type=json_type)(tools.partitions)
    server.resource("slurm://config", name="config", mime_type=json_type)(tools.config)

    def job(job_id: str) -> str:
        """One job, as show_job tells it."""
        return tools.show_job(job_id)

    server.resource("slurm://jobs/{job_id}", name="job", mime_type="text/plain")(job)
    server.add_tool(
        tools.cancel_jobs,
        name="cancel_jobs",
        annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True),
    )
    return server
