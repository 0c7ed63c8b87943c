"""The dev cluster taking its daemons down, for real: ``down``/``up``, a crash of every
process, a node's crash and the no-accounting mode, on a dev cluster of this module's own.

A test must not stop the shared dev cluster's daemons (other test sessions use it), so
this module brings up its own (``own``, see ``owncluster.py``): two nodes in their
namespaces, accounting on, no containers, on the session's port base + 50, with its
state under ``~/.local/state/slurm-sdk/restarts-<base>``. Every ``slurm.devcluster``
call here reaches it (``dc.up()`` without arguments included). Each test leaves it up
with accounting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jobfuncs
import pytest
from owncluster import own_cluster
from test_devcluster import accounted_since, eventually, multi_node, now_for_sacct, sh

import slurm.devcluster as dc
from slurm import Cluster, JobState
from slurm.devcluster import Status
from slurm.errors import JobTerminatedError

RESTARTS_PORT_OFFSET = 50


def _up(*, accounting: bool = True) -> Status:
    return dc.up(nodes=2, containers=False, accounting=accounting)


@pytest.fixture(scope="module")
def own() -> Iterator[Status]:
    """The module's own dev cluster, up for the module and down after it."""
    with own_cluster("restarts", RESTARTS_PORT_OFFSET, 2, _up) as st:
        yield st


@pytest.fixture
def restore_cluster(own: Status) -> Iterator[None]:
    yield
    st = _up()
    assert st.running and st.accounting


def our_processes(st: Status) -> list[str]:
    """Command lines of every process that runs with our state dir or in our namespaces."""
    found = []
    mine = {os.getpid(), os.getppid()}  # the test run itself may carry our SLURM_CONF
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if st.state_dir in cmdline or f"SLURM_CONF={st.slurm_conf}".encode() in environ:
            found.append(f"{proc.name} {cmdline}")
    for node in st.nodes:
        if node.netns:
            netns_pids = subprocess.run(
                ["ip", "netns", "pids", node.netns], capture_output=True, text=True, check=False
            ).stdout.split()
            found += [f"{pid} (in {node.netns})" for pid in netns_pids]
    return found


def assert_nothing_left(st: Status) -> None:
    """No namespace, interface or process of this cluster is left (munged is shared)."""
    netns = sh("ip", "netns", "list")
    links = sh("ip", "-o", "link", "show")
    for node in st.nodes:
        if node.netns:
            assert node.netns not in netns
            prefix = node.netns.split("-")[0]
            assert f" {prefix}br" not in links and f" {prefix}n" not in links, links
    leftovers = [p for p in our_processes(st) if "munged" not in p]
    assert leftovers == [], leftovers


def node_state(node: str) -> str:
    return sh("sinfo", "-h", "-N", "-n", node, "-o", "%T").splitlines()[0]  # once per partition


def crash_node(st: Status, node: str) -> None:
    """The node dies at once: every process in its namespaces (slurmd, the jobs' steps
    and programs, its holder) is killed; ``dc.up()`` brings it back."""
    netns = next(n.netns for n in st.nodes if n.name == node)
    for pid in sh("ip", "netns", "pids", netns).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def running_node(job_id: str) -> str:
    state: list[str] = []

    def running() -> bool:
        state[:] = sh("squeue", "-h", "-j", job_id, "-o", "%T %N").split()
        return state[:1] == ["RUNNING"]

    eventually(running, f"job {job_id} to run", 120)
    return state[1]


def other_node(st: Status, node: str) -> str:
    return next(n.name for n in st.nodes if n.name != node)


@contextlib.contextmanager
def _two_node_cluster(own: Status, tmp_path: Path) -> Iterator[Cluster]:
    """A local-backend cluster on ``own``, for a test that crashes one of its two nodes."""
    if not multi_node(own):
        pytest.skip("needs a second node to go on; crashing the only node takes the cluster")
    with Cluster(
        backend_type="local", job_base_dir=str(tmp_path / "jobs"), default_partition="debug"
    ) as cluster:
        yield cluster


def test_a_node_crash_requeues_the_requeueable_task_and_fails_the_other(
    own: Status, tmp_path: Path, restore_cluster: None
) -> None:
    """One crash, three checks (each costs Slurm ~30 s to notice): the node is DOWN in
    seconds and back when its slurmd returns; a requeueable task on it finishes on the
    other node, once; a non-requeueable one fails naming NODE_FAIL and the node."""
    del restore_cluster
    with _two_node_cluster(own, tmp_path):
        survivor = jobfuncs.report_restarts(15)
        node = running_node(survivor.id)
        lost = jobfuncs.report_restarts.with_options(no_requeue=True, nodelist=node)(60)
        running_node(lost.id)
        crash_node(own, node)
        started = time.monotonic()
        eventually(lambda: node_state(node).startswith("down"), f"{node} to be DOWN", 60)
        # SlurmdTimeout=10 plus ping rounds: ~30 s seen (speed is for `make bench`).
        print(f"{node} DOWN {time.monotonic() - started:.1f} s after it crashed")

        with pytest.raises(JobTerminatedError, match="NODE_FAIL") as info:
            lost.get_result(timeout=240)
        assert f"its node {node} failed" in str(info.value)

        assert survivor.get_result(timeout=240) >= 1  # the same call, again after the requeue
        assert survivor.requeue_count >= 1 and survivor.state is JobState.COMPLETED
        runs = Path(survivor.runs_path).read_text().splitlines()
        assert sum(" finished " in line for line in runs) == 1, runs  # nothing done twice
        assert runs[-1].endswith(f"host={other_node(own, node)}"), runs
        nodes = sh(
            "sacct", "-X", "-n", "-P", "--duplicates", "-j", survivor.id, "-o", "NodeList,State"
        )
        assert f"{node}|NODE_FAIL" in nodes or f"{node}|REQUEUED" in nodes, nodes

    st = _up()  # starts the node again: its holder, its slurmd
    assert st.running
    eventually(lambda: node_state(node) == "idle", f"{node} back in service", 30)
    out = sh("sbatch", "--parsable", "--wait", "-w", node, "-o", "/dev/null", "--wrap", "true")
    assert out.isdigit()


def test_a_node_fail_retry_excludes_the_failed_node(
    own: Status, tmp_path: Path, restore_cluster: None
) -> None:
    """Issue 25: a call Slurm does not requeue (no_requeue=True) whose node crashes is
    retried by its Retry(on={"NODE_FAIL"}) with --exclude=<that node> (sacct's SubmitLine
    shows it), and runs on the other node."""
    del restore_cluster
    with _two_node_cluster(own, tmp_path):
        job = jobfuncs.host_after(20)
        first = job.id
        node = running_node(first)
        crash_node(own, node)
        assert job.get_result(timeout=300) == other_node(own, node)
        lost, retried = job.attempts
        assert (lost.job_id, lost.state) == (first, "NODE_FAIL")
        assert (retried.rule, retried.limits.get("exclude")) == ("exclude", node)
        submit_line = sh("sacct", "-X", "-n", "-P", "-j", retried.job_id, "-o", "SubmitLine")
        assert f"--exclude={node}" in submit_line, submit_line
        ran_on = sh("sacct", "-X", "-n", "-P", "-j", retried.job_id, "-o", "NodeList")
        assert ran_on == other_node(own, node)


def test_up_after_a_crash_cleans_up_and_comes_back(own: Status, restore_cluster: None) -> None:
    del restore_cluster
    # A crash: every process of the cluster killed at once, pid files and namespaces left.
    for line in our_processes(own):
        if "munged" not in line:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    eventually(lambda: not dc.status().running, "the cluster to be seen as down")
    started = time.monotonic()
    st = _up()
    assert st.running
    print(f"up after a crash: {time.monotonic() - started:.1f} s")
    # Usable again (a job that survived in slurmctld's saved state may hold one). A node
    # the saved state still has DOWN (the crash test before) returns when its slurmd registers.
    nodes = [node.name for node in st.nodes]
    eventually(
        lambda: all(node_state(n) in ("idle", "mixed", "allocated") for n in nodes),
        "every node in service after the crash",
        60,
    )
    since = now_for_sacct()
    job_id = sh("sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "true")
    done = ["COMPLETED"]
    eventually(lambda: accounted_since(job_id, since) == done, "sacct after the crash", 120)


def test_down_then_up_brings_the_same_cluster_back(own: Status, restore_cluster: None) -> None:
    del restore_cluster
    stopped = dc.down()
    assert not stopped.running
    assert all(stopped.daemons[name] is None for name in ("slurmctld", "sshd"))
    assert_nothing_left(own)
    result = subprocess.run(
        [sys.executable, "-m", "slurm.cli", "devcluster", "status"],
        capture_output=True,
        check=False,
    )
    assert result.returncode != 0
    started = time.monotonic()
    st = _up()
    assert st.running
    print(f"up after down: {time.monotonic() - started:.1f} s")
    assert st.ssh == own.ssh
    since = now_for_sacct()
    job_id = sh("sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "true")
    eventually(lambda: accounted_since(job_id, since) == ["COMPLETED"], "sacct after down/up")


def test_no_accounting_mode_and_back(own: Status, restore_cluster: None) -> None:
    del restore_cluster
    st = _up(accounting=False)
    assert st.running and not st.accounting
    assert st.daemons["slurmdbd"] is None and st.daemons["mariadb"] is None
    assert "AccountingStorageType=accounting_storage/none" in Path(st.slurm_conf).read_text()
    job_id = sh("sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "true")
    assert job_id.isdigit()
    back = _up()
    assert back.running and back.accounting
    eventually(lambda: sh("sacct", "-n", "-X", "-o", "JobID") != "", "sacct after switching back")
