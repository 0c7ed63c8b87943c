"""`slurm mcp` over stdio, driven by the mcp package's own client, against the dev cluster.

The server is the installed ``slurm`` command, spawned by ``stdio_client``
as an assistant would spawn it, with this test's job base dir.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import jobfuncs
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import TextContent

from slurm import Cluster
from slurm._slurm.commands import JobState
from slurm.devcluster import Status

_TIMEOUT = 120.0
Call = Callable[..., Awaitable[tuple[str, bool]]]


def _serve(cluster: Cluster, body: Callable[[Call], Awaitable[None]], *backend: str) -> None:
    """Run ``body(call)`` in a real MCP session with `slurm mcp` on ``cluster``'s jobs.

    ``backend``: the server's cluster options (default: the local backend).
    """
    slurm_command = str(Path(sys.executable).parent / "slurm")
    params = StdioServerParameters(
        command=slurm_command,
        args=["mcp", *(backend or ("--backend", "local")), "--job-base-dir", cluster.base_dir,
              "--poll-interval", "0.2"],
        env=dict(os.environ),
    )  # fmt: skip

    async def main() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()

            async def call(name: str, **arguments: Any) -> tuple[str, bool]:
                result = await session.call_tool(name, arguments)
                texts = [c.text for c in result.content if isinstance(c, TextContent)]
                return "\n".join(texts), bool(result.is_error)

            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == {
                "list_jobs", "show_job", "job_logs", "job_result", "cancel_jobs",
                "list_partitions", "list_environments",
            }  # fmt: skip
            await body(call)

    anyio.run(main)


def test_list_show_result_logs_cancel(cluster: Cluster) -> None:
    done = jobfuncs.print_and_return("hello through mcp")
    failed = jobfuncs.fail_with("broken on purpose")
    running = jobfuncs.sleep_forever()
    try:
        assert done.get_result(timeout=_TIMEOUT) == "hello through mcp"
        failed.wait(timeout=_TIMEOUT)

        async def body(call: Call) -> None:
            listing, error = await call("list_jobs", limit=10)
            assert not error, listing
            assert f"jobs in {cluster.base_dir}" in listing
            for job, state in ((done, "COMPLETED"), (failed, "FAILED")):
                (line,) = [ln for ln in listing.splitlines() if f" {job.id} " in ln]
                assert state in line and job.job_dir.rsplit("/", 1)[1][:20] in line

            shown, error = await call("show_job", job_id=done.id, lines=5)
            assert not error, shown
            assert re.search(r"state\s+COMPLETED", shown) and re.search(r"exit code\s+0:0", shown)
            assert re.search(r"result\s+'hello through mcp'", shown)
            assert "err:hello through mcp" in shown.split("--- stderr")[1]

            result, _ = await call("job_result", job_id=done.id)
            assert result.splitlines() == [
                f"job {done.id} (print_and_return): COMPLETED, exit code 0:0",
                "result: 'hello through mcp'",
            ]
            result, _ = await call("job_result", job_id=failed.id)
            assert f"job {failed.id} (fail_with): FAILED" in result
            assert "error: jobfuncs.CustomError: ('broken on purpose', 7)" in result
            assert "remote traceback:" in result and "raise CustomError(message, code)" in result
            assert "last lines of stderr" in result

            logs, _ = await call("job_logs", job_id=done.id)
            end = len(b"hello through mcp\n")
            assert logs == (
                f"hello through mcp\n[stdout of job {done.id}: bytes 0..{end}; "
                "job COMPLETED; the stdout is complete]"
            )
            # Offsets are bytes of the file: from a clone the nodes cannot see, the SDK's
            # warning about the working directory comes before the task's own line.
            whole, _ = await call("job_logs", job_id=done.id, stream="stderr")
            start = len(whole.split("err:hello through mcp")[0].encode()) + len(b"err:")
            logs, _ = await call("job_logs", job_id=done.id, stream="stderr", offset=start)
            assert logs.startswith("hello through mcp\n[stderr of")
            again, _ = await call("job_logs", job_id=done.id, offset=end)
            assert again.startswith(f"[stdout of job {done.id}: bytes {end}..{end}; ")

            waited, _ = await call("job_logs", job_id=running.id, follow=True, timeout=1)
            assert "call again with offset=0" in waited, waited

            # Refused before scancel: nothing is cancelled.
            refused, error = await call("cancel_jobs", job_ids=[running.id, "999999"])
            assert error and "Not the SDK's jobs" in refused and "999999" in refused
            unknown, error = await call("show_job", job_id="not-a-job")
            assert error and "not-a-job" in unknown, unknown
            bad, error = await call("job_logs", job_id=done.id, offset=-1)
            assert error and "offset must be 0 or more" in bad

            cancelled, error = await call("cancel_jobs", job_ids=[running.id])
            assert not error and cancelled == f"cancelled {running.id}"

        _serve(cluster, body)
        running.wait(timeout=_TIMEOUT)
        assert running.state is JobState.CANCELLED
    finally:
        running.cancel()


def test_follow_logs_until_the_job_ends(cluster: Cluster) -> None:
    job = jobfuncs.print_slowly(5, 0.5)

    async def body(call: Call) -> None:
        followed, error = await call("job_logs", job_id=job.id, follow=True, timeout=_TIMEOUT)
        assert not error, followed
        *lines, status = followed.splitlines()
        assert lines == [f"line {i}" for i in range(5)]
        assert status.endswith("job COMPLETED; the stdout is complete]"), status

    _serve(cluster, body)
    assert job.get_result(timeout=_TIMEOUT) == 5


def test_the_server_on_an_ssh_cluster(devcluster: Status, cluster: Cluster) -> None:
    """The server on an SSH cluster (the dev cluster's alias), as on a laptop."""
    job = jobfuncs.print_and_return("over ssh")
    assert job.get_result(timeout=_TIMEOUT) == "over ssh"

    async def body(call: Call) -> None:
        listing, error = await call("list_jobs")
        assert not error and f" {job.id} " in listing and "COMPLETED" in listing, listing
        result, _ = await call("job_result", job_id=job.id)
        assert result.endswith("result: 'over ssh'"), result
        logs, _ = await call("job_logs", job_id=job.id, follow=True, timeout=10)
        assert logs.startswith("over ssh\n[stdout of job"), logs

    ssh = devcluster.ssh
    _serve(cluster, body, "--hostname", ssh.alias, "--username", ssh.username)
