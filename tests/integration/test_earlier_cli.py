"""The earlier SDK's commands against the dev cluster (issue 23): -e/-f on the commands,
`slurm cluster watch|connect`, `slurm jobs connect --node`, `slurm mcp status` and the
MCP tools and resources it had."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import jobfuncs
import pytest
from click.testing import CliRunner, Result
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import TextContent, TextResourceContents

from slurm import Cluster, JobState
from slurm.cli import main
from slurm.devcluster import Status

_TIMEOUT = 120.0
_SLURM = str(Path(sys.executable).parent / "slurm")


def _cli(*argv: str) -> Result:
    return CliRunner(env={"COLUMNS": "250"}).invoke(main, list(argv), catch_exceptions=False)


def _running(job: object) -> None:
    deadline = time.monotonic() + _TIMEOUT
    while job.get_status() != JobState.RUNNING:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            pytest.fail("the job never ran", pytrace=False)
        time.sleep(0.3)


@pytest.fixture()
def slurmfile(cluster: Cluster, devcluster: Status, tmp_path: Path) -> Iterator[Path]:
    """A Slurmfile: [here] is the test's local cluster, [login] the dev cluster over SSH."""
    path = tmp_path / "Slurmfile.toml"
    path.write_text(
        f'[here]\nbackend = "local"\njob_base_dir = "{cluster.base_dir}"\n'
        f'[here.sbatch]\npartition = "debug"\n'
        f'[login]\nhostname = "{devcluster.ssh.alias}"\nusername = "{devcluster.ssh.username}"\n'
    )
    path.chmod(0o600)
    yield path


def test_env_and_slurmfile_options_reach_the_cluster(cluster: Cluster, slurmfile: Path) -> None:
    job = jobfuncs.print_and_return("through -e and -f")
    assert job.get_result(timeout=_TIMEOUT) == "through -e and -f"
    listed = _cli("jobs", "list", "-f", str(slurmfile), "-e", "here")
    assert listed.exit_code == 0, listed.output
    assert f" {job.id} " in listed.output and "COMPLETED" in listed.output
    # `jobs logs -f` follows, so the Slurmfile is --slurmfile there.
    logs = _cli("jobs", "logs", job.id, "--slurmfile", str(slurmfile), "--env", "here", "-f")
    assert logs.exit_code == 0 and "through -e and -f" in logs.output, logs.output
    # Without -e/-f the same command looks elsewhere and does not find the job.
    missing = _cli("jobs", "show", job.id, "--backend", "local", "--job-base-dir", "/nonexistent")
    assert missing.exit_code == 1
    # An unknown environment says which ones there are (brackets shown, not eaten as markup).
    bad = _cli("jobs", "list", "-f", str(slurmfile), "-e", "nope")
    assert bad.exit_code == 1 and "[nope]" in bad.output and "here, login" in bad.output


def test_cluster_watch_shows_the_partitions_and_your_jobs(
    cluster: Cluster, slurmfile: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    job = jobfuncs.after_file(str(flag), 1)
    try:
        _running(job)
        result = _cli("cluster", "watch", "-f", str(slurmfile), "-e", "here", "--count", "2",
                      "--interval", "0.2")  # fmt: skip
        assert result.exit_code == 0, result.output
        lines = {line.split("│")[1].strip(): line for line in result.output.splitlines()
                 if line.startswith("│") and line.split("│")[1].strip()}  # fmt: skip
        assert {"debug*", "compute", "urgent"} <= set(lines), result.output
        ours = sum(1 for q in cluster.get_queue() if q["PARTITION"] == "debug"
                   and q["STATE"] == "RUNNING")  # fmt: skip
        assert f"{ours} running" in lines["debug*"]
    finally:
        flag.write_text("")
    assert job.get_result(timeout=_TIMEOUT) == 1


def test_cluster_connect_runs_a_command_on_the_login_node(slurmfile: Path) -> None:
    """Through the user's own OpenSSH (the dev cluster's alias), and locally for [here]."""
    env = {**os.environ, "SLURMFILE": str(slurmfile)}
    over_ssh = subprocess.run(
        [_SLURM, "cluster", "connect", "login", "--", "printf", "%s|", "a b", "$HOME"],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert over_ssh.returncode == 0, over_ssh.stderr
    assert over_ssh.stdout == "a b|$HOME|"  # each word as given, nothing expanded twice
    here = subprocess.run(
        [_SLURM, "cluster", "connect", "here", "--", "sh", "-c", "exit 3"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert here.returncode == 3
    unknown = subprocess.run(
        [_SLURM, "cluster", "connect", "nope", "--", "true"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert unknown.returncode == 1 and "no environment [nope]" in unknown.stderr


def test_jobs_connect_node_picks_a_node_of_a_multi_node_job(
    cluster: Cluster, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    job = jobfuncs.after_file.with_options(nodes=2, ntasks_per_node=1)(str(flag), 1)
    try:
        _running(job)
        base = ["--backend", "local", "--job-base-dir", cluster.base_dir]
        for node in ("node1", "node2"):
            result = _cli("jobs", "connect", job.id, "--node", node, *base, "--", "hostname")
            assert result.exit_code == 0, result.output
            assert result.output.strip().splitlines()[-1] == node
        bad = _cli("jobs", "connect", job.id, "--node", "node9", *base, "--", "hostname")
        assert bad.exit_code != 0
    finally:
        flag.write_text("")
    assert job.get_results(timeout=_TIMEOUT) == [1, 1]


def test_mcp_status_and_the_earlier_tools_and_resources(cluster: Cluster, slurmfile: Path) -> None:
    status = _cli("mcp", "status", "-f", str(slurmfile), "-e", "here")
    assert status.exit_code == 0, status.output
    assert "list_partitions" in status.output and "slurm://jobs/{job_id}" in status.output
    job = jobfuncs.print_and_return("resource")
    assert job.get_result(timeout=_TIMEOUT) == "resource"
    params = StdioServerParameters(
        command=_SLURM, args=["mcp", "run", "-f", str(slurmfile), "-e", "here"],
        env={**os.environ, "SLURMFILE": str(slurmfile)},
    )  # fmt: skip
    seen: dict[str, str] = {}

    async def session_body() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for tool in ("list_partitions", "list_environments"):
                result = await session.call_tool(tool, {})
                assert not result.is_error
                seen[tool] = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
            for uri in ("slurm://queue", "slurm://partitions", "slurm://config",
                        f"slurm://jobs/{job.id}"):  # fmt: skip
                read_back = await session.read_resource(uri)
                seen[uri] = "".join(
                    c.text for c in read_back.contents if isinstance(c, TextResourceContents)
                )

    anyio.run(session_body)
    assert "debug*" in seen["list_partitions"] and "urgent" in seen["list_partitions"]
    assert "here" in seen["list_environments"] and "login" in seen["list_environments"]
    assert isinstance(json.loads(seen["slurm://queue"]), list)
    partitions = json.loads(seen["slurm://partitions"])["partitions"]
    assert {"debug", "compute", "urgent"} <= {p["PARTITION"] for p in partitions}
    config = json.loads(seen["slurm://config"])
    assert config["job_base_dir"] == cluster.base_dir and "password" not in config
    assert "COMPLETED" in seen[f"slurm://jobs/{job.id}"]
    assert "'resource'" in seen[f"slurm://jobs/{job.id}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_mcp_run_over_http(cluster: Cluster, slurmfile: Path, tmp_path: Path) -> None:
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [_SLURM, "mcp", "run", "--transport", "http", "--http-port", str(port),
         "-f", str(slurmfile), "-e", "here"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    text = (tmp_path / "server.log").read_text()
                    pytest.fail(f"the server did not listen: {text}", pytrace=False)
                time.sleep(0.1)
        names: list[str] = []

        async def body() -> None:
            url = f"http://127.0.0.1:{port}/mcp"
            async with (
                streamable_http_client(url) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                names.extend(t.name for t in (await session.list_tools()).tools)

        anyio.run(body)
        assert {"list_jobs", "list_partitions", "cancel_jobs"} <= set(names)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _dap_initialize(port: int) -> dict[str, object] | None:
    """Send a Debug Adapter Protocol 'initialize' to 127.0.0.1:port; its response (events
    before it skipped), or None when nothing answers there yet."""
    body = json.dumps(
        {"seq": 1, "type": "request", "command": "initialize",
         "arguments": {"adapterID": "slurm-sdk-test", "clientID": "test"}}
    ).encode()  # fmt: skip
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(head.split(b":", 1)[1])
                while len(data) < length:
                    chunk = s.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
                message: dict[str, object] = json.loads(data[:length])
                data = data[length:]
                if message.get("type") == "response":
                    return message
    except OSError:
        return None


def test_jobs_debug_forwards_to_debugpy_on_the_node_over_ssh(
    cluster: Cluster, devcluster: Status, tmp_path: Path
) -> None:
    """A job with DebugCallback; `slurm jobs debug` on an SSH cluster forwards a port here
    to debugpy on the job's node, and a debugger's first request gets its answer."""
    import signal

    from slurm.callbacks import DebugCallback

    debug_port = 20000 + os.getpid() % 20000
    flag = tmp_path / "go"
    callbacks = [DebugCallback(port=debug_port)]
    with Cluster(
        backend_type="local", job_base_dir=cluster.base_dir, default_partition="debug",
        callbacks=callbacks,
    ) as c:  # fmt: skip
        # debugpy and its adapter process count in the job's memory (killed at 64M once).
        job = c.submit(jobfuncs.after_file.with_options(mem="512M"))(str(flag), "debugged")
        _running(job)
        ssh = devcluster.ssh
        server = subprocess.Popen(
            [_SLURM, "jobs", "debug", job.id, "--debug-port", str(debug_port),
             "--local-port", "0", "--hostname", ssh.alias, "--username", ssh.username,
             "--job-base-dir", cluster.base_dir],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT prints every thread
        )  # fmt: skip
        stuck = ""
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            assert first.startswith("forwarding 127.0.0.1:"), first + server.stdout.read()
            local = int(first.split()[1].split(":")[1])
            assert " to node" in first and f":{debug_port} " in first
            assert server.stdout.readline().startswith("VS Code launch.json")
            lines = [server.stdout.readline()]
            while lines[-1] not in ("}\n", ""):
                lines.append(server.stdout.readline())
            config = json.loads("".join(lines))
            assert config["request"] == "attach" and config["connect"]["port"] == local
            deadline = time.monotonic() + _TIMEOUT
            answer = _dap_initialize(local)
            while answer is None and time.monotonic() < deadline:  # debugpy starting
                time.sleep(0.5)
                answer = _dap_initialize(local)
            assert answer is not None, "debugpy never answered through the forward"
            assert answer["type"] == "response" and answer["command"] == "initialize"
            assert answer["success"] is True
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # once in a fresh-clone run: say where it hung
                server.send_signal(signal.SIGABRT)
                stuck = server.communicate(timeout=30)[0]
            if server.stdout is not None:
                server.stdout.close()
            flag.write_text("")
        assert not stuck, f"slurm jobs debug did not stop on Ctrl-C within 30 s:\n{stuck}"
        assert job.get_result(timeout=_TIMEOUT) == "debugged"
