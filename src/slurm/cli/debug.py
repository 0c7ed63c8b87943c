"""``slurm jobs debug ID``: attach your editor's debugger to a job that runs debugpy.

The job runs :class:`slurm.callbacks.DebugCallback`, which starts debugpy on its
node (port 5678 unless told). This command finds the node (one batched look, then
``scontrol show node`` for its address), forwards a port of this machine to it,
through the cluster's SSH connection when there is one (as ``ssh -L`` would), and
prints the editor's attach configuration. It forwards until Ctrl-C or the job ends.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from types import FrameType
from typing import Any

import click

from slurm import Cluster
from slurm.cli.jobs import cluster_options, opened_cluster
from slurm.cli.jobview import describe_state
from slurm.errors import ConfigurationError
from slurm.inspect import PortForward, look

__all__ = ["attach_config", "debug", "node_address"]


def node_address(scontrol_output: str, node: str) -> str:
    """The address of ``node`` from ``scontrol -o show node NODE`` (``NodeAddr``), else
    the name itself.

    Example::

        >>> node_address("NodeName=node1 NodeAddr=10.0.0.11 NodeHostName=node1", "node1")
        '10.0.0.11'
    """
    for word in scontrol_output.split():
        key, _, value = word.partition("=")
        if key == "NodeAddr" and value:
            return value
    return node


def attach_config(job_id: str, port: int, remote_root: str | None = None) -> dict[str, Any]:
    """The attach entry of VS Code's ``launch.json`` (debugpy) for the forwarded port."""
    config: dict[str, Any] = {
        "name": f"Attach to Slurm job {job_id}",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": "127.0.0.1", "port": port},
        "justMyCode": False,
    }
    if remote_root:
        config["pathMappings"] = [{"localRoot": "${workspaceFolder}", "remoteRoot": remote_root}]
    return config


def _running_node(cluster: Cluster, job_id: str, wait: bool) -> str:
    """The first node of ``job_id`` once it runs (``wait``: until it does)."""
    while True:
        snapshot = look(cluster, [job_id])
        state = describe_state(job_id, snapshot)
        info = snapshot.infos.get(job_id)
        if state.text == "RUNNING" and info is not None and info.node:
            names = cluster.slurm.run(["scontrol", "show", "hostnames", info.node]).stdout.split()
            return names[0] if names else info.node
        if state.final or not wait:
            raise ConfigurationError(
                f"Job {job_id} is {state.text}, not running, so no debugger listens; "
                + ("it has ended." if state.final else "pass --wait to wait for it to start.")
            )
        time.sleep(1.0)


@click.command()
@click.argument("job_id")
@click.option("--debug-port", default=5678, show_default=True, type=click.IntRange(1, 65535),
              help="The port debugpy listens on in the job (DebugCallback(port=), "
              "$DEBUGPY_PORT).")  # fmt: skip
@click.option("--local-port", default=None, type=click.IntRange(0, 65535),
              help="The port here (default: --debug-port's; 0: any free one).")  # fmt: skip
@click.option("--wait", is_flag=True, help="Wait for the job to start running.")
@cluster_options
def debug(job_id: str, debug_port: int, local_port: int | None, wait: bool, **options: Any) -> None:
    """Forward a port here to the debugger a running job listens on, and print the
    editor's attach configuration; forwards until Ctrl-C or the job ends.

    The job must run DebugCallback (``Cluster(callbacks=[DebugCallback()])``), with
    debugpy installed where it runs.
    """
    with opened_cluster(options) as cluster:
        job = cluster.get_job(job_id, track=False)  # only the SDK's own jobs
        node = _running_node(cluster, job.id, wait)
        shown = cluster.slurm.run(["scontrol", "-o", "show", "node", node], check=False)
        address = node_address(shown.stdout, node)
        port = debug_port if local_port is None else local_port
        try:
            forward = PortForward(lambda: cluster.transport.connect_tcp(address, debug_port),
                                  port=port)  # fmt: skip
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot listen on 127.0.0.1:{port} here ({exc}); pass another --local-port."
            ) from exc
        with forward:
            click.echo(
                f"forwarding 127.0.0.1:{forward.port} to {node}:{debug_port} ({address}) for "
                f"job {job.id}; Ctrl-C stops"
            )
            click.echo("VS Code launch.json configuration:")
            click.echo(json.dumps(attach_config(job.id, forward.port), indent=2))
            if _forward_while_running(cluster, job.id):
                click.echo(f"job {job.id} is no longer running; forwarding stopped")
            else:
                click.echo("forwarding stopped; the job keeps running")


def _forward_while_running(cluster: Cluster, job_id: str) -> bool:
    """Wait while ``job_id`` runs: True when it ended, False at Ctrl-C.

    Ctrl-C only sets a flag (a second one interrupts as usual): raised in the middle of
    a look over SSH, it could leave the connection's locks held, and closing the
    cluster afterwards would hang.
    """
    stop = threading.Event()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        while not stop.is_set():
            if describe_state(job_id, look(cluster, [job_id])).text != "RUNNING":
                return True
            stop.wait(2.0)
        return False
    finally:
        signal.signal(signal.SIGINT, previous)
