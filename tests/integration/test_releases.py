"""The SDK on dev clusters of other Slurm releases (24.11, 26.05), run from their roots.

The module brings up one dev cluster per release of its own, side by side (and beside
the session's 22.05 one, which it does not need): ``slurm devcluster up --slurm R`` on
the session's port base + 60 (24.11) and + 70 (26.05), state under
``$SLURM_SDK_TEST_RELEASE_STATE`` (default ``~/.local/state/slurm-sdk``) in
``release-<R>-<base>``, kept between sessions so the next ``up`` takes seconds. The
first ``up`` of a machine builds each root with mmdebstrap (about 20 s each, cached
in ``/var/cache/slurm-sdk/devcluster-roots``). All are taken down at the end.
``$SLURM_SDK_TEST_RELEASES`` (default ``24.11,26.05``) chooses the releases; these
tests carry the ``release`` marker (``-m "not release"`` leaves them out).

The client is this interpreter (Python 3.11); the release's stock ``python3`` is
Debian's (3.13 on trixie, 3.14 on sid). Home directories, ``/work``, ``/opt`` and
``/usr/local`` are shared into the root as NFS would be, so this interpreter runs on
the nodes too: most jobs here use it (the local backend's default, and
``python=node_python()`` over SSH). One test runs calls by reference on the stock
Python (``packaging={"python": "/usr/bin/python3"}``) and sees a call by value refused.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jobfuncs
import pytest
from jobfuncs import CustomError, add, echo, fail_after, fail_with
from nodepython import node_python

import slurm.devcluster as dc
from slurm import Cluster
from slurm.devcluster import Status
from slurm.devcluster.releases import get_release
from slurm.devcluster.rootfs import ENV_MIRROR, ENV_ROOT_CACHE
from slurm.devcluster.settings import env_port_base
from slurm.errors import ConfigurationError, DevclusterError, JobTerminatedError

pytestmark = pytest.mark.release

_OFFSETS = {"24.11": 60, "26.05": 70}
_RELEASES = [r.strip() for r in os.environ.get("SLURM_SDK_TEST_RELEASES", "24.11,26.05").split(",")]
_TIMEOUT = 120.0


def _state_root() -> Path:
    explicit = os.environ.get("SLURM_SDK_TEST_RELEASE_STATE")
    return Path(explicit) if explicit else Path.home() / ".local" / "state" / "slurm-sdk"


class _Clusters:
    """The module's clusters, brought up on first use and all taken down at the end."""

    def __init__(self) -> None:
        self.up: dict[str, Status] = {}
        self.seconds: dict[str, float] = {}

    def get(self, release: str) -> Status:
        if release not in self.up:
            base = env_port_base() + _OFFSETS[release]
            state = _state_root() / f"release-{release}-{base}"
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            started = time.monotonic()
            try:
                st = dc.up(
                    state, release=release, port_base=base, nodes=2, containers=False,
                    accounting=True,
                )  # fmt: skip
            except DevclusterError as exc:
                pytest.fail(f"the Slurm {release} cluster could not start: {exc}", pytrace=False)
            self.seconds[release] = time.monotonic() - started
            self.up[release] = st
        return self.up[release]

    def down(self) -> None:
        for st in self.up.values():
            with contextlib.suppress(DevclusterError):
                dc.down(st.state_dir)


@pytest.fixture(scope="module")
def clusters() -> Iterator[_Clusters]:
    if os.geteuid() != 0:
        pytest.fail("the dev cluster needs root (`slurm devcluster up` says so)", pytrace=False)
    every = _Clusters()
    try:
        yield every
    finally:
        every.down()


@pytest.fixture(scope="module", params=_RELEASES)
def release_cluster(request: pytest.FixtureRequest, clusters: _Clusters) -> Status:
    return clusters.get(str(request.param))


@pytest.fixture()
def on_release(release_cluster: Status, monkeypatch: pytest.MonkeyPatch) -> Status:
    """This test's clients reach the release's cluster with the release's own commands."""
    monkeypatch.setenv("SLURM_CONF", release_cluster.slurm_conf)
    monkeypatch.setenv("PATH", f"{release_cluster.slurm_bin}:{os.environ['PATH']}")
    return release_cluster


def _slurm(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout


def _check_runs(cluster: Cluster, where: str) -> None:
    """A task, an array of three, and a failure with its remote traceback."""
    with cluster:
        assert add(2, 3).get_result(timeout=_TIMEOUT) == 5
        array = add.map([(1, 2), (3, 4), (5, 6)])
        assert array.get_results(timeout=_TIMEOUT) == [3, 7, 11]
        with pytest.raises(CustomError) as info:
            fail_with("boom on " + where, 4).get_result(timeout=_TIMEOUT)
    assert info.value.code == 4
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "remote traceback" in notes
    assert "raise CustomError(message, code)" in notes
    assert "boom on " + where in notes


def test_status_names_the_release_and_its_python(on_release: Status) -> None:
    release = get_release(on_release.release)
    assert on_release.running
    assert on_release.slurm_version.startswith(release.name + ".")
    assert on_release.python_version.startswith(release.python + ".")
    assert [n.name for n in on_release.nodes] == ["node1", "node2"]
    # The release's own clients answer, sacct included (slurmdbd + MariaDB).
    assert _slurm("sinfo", "-V").split()[-1] == on_release.slurm_version
    assert _slurm("sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now") == ""
    assert set(_slurm("sinfo", "-h", "-o", "%P").split()) == {"debug*", "compute", "urgent"}


def test_local_backend_runs_tasks_arrays_and_failures(on_release: Status, home_tmp: Path) -> None:
    _check_runs(
        Cluster(
            backend_type="local", job_base_dir=str(home_tmp / "jobs"), default_partition="debug"
        ),
        f"local {on_release.release}",
    )


def _ssh(st: Status, base: Path, **kwargs: Any) -> Cluster:
    return Cluster(
        backend_type="ssh",
        hostname=st.ssh.alias,
        username=st.ssh.username,
        job_base_dir=str(base),
        default_partition="debug",
        **kwargs,
    )


def test_ssh_runs_tasks_arrays_and_failures(on_release: Status, home_tmp: Path) -> None:
    _check_runs(_ssh(on_release, home_tmp / "jobs", python=node_python()),
                f"ssh {on_release.release}")  # fmt: skip


def test_calls_by_reference_run_on_the_release_s_stock_python(on_release: Status) -> None:
    """Debian's python3 of the release (3.13, 3.14) beside this 3.11 client: the SDK builds
    the job environment from it (kept in the cluster's state directory, so built once),
    a call by reference runs and its exception comes home; a call holding code pickled
    by value is refused before anything reaches Slurm."""
    release = get_release(on_release.release)
    base = Path(on_release.state_dir) / "sdk-jobs-stock-python"
    cluster = _ssh(on_release, base, packaging={"python": "/usr/bin/python3"})
    with cluster:
        assert add(2, 3).get_result(timeout=_TIMEOUT) == 5
        with pytest.raises(CustomError) as info:
            fail_with("boom on the stock python", 5).get_result(timeout=_TIMEOUT)
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert f"/lib/python{release.python}/site-packages/" in notes  # ran on that Python
        if release.python != "{}.{}".format(*sys.version_info[:2]):
            before = _slurm("sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now-1hour")
            with pytest.raises(ConfigurationError) as refused:
                echo(lambda x: x)
            message = str(refused.value)
            assert f"the cluster runs Python {release.python}" in message
            assert "Nothing was submitted" in message
            assert _slurm("sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now-1hour") == before


def test_releases_run_side_by_side(clusters: _Clusters) -> None:
    """Every release of the module up at once, each answering with its own version."""
    statuses = [clusters.get(r) for r in _RELEASES]
    assert len({st.ssh.port for st in statuses}) == len(statuses)
    for st in statuses:
        assert dc.status(st.state_dir).running
        out = subprocess.run(
            [f"{st.slurm_bin}/sinfo", "-V"], capture_output=True, text=True, check=True,
            env={**os.environ, "SLURM_CONF": st.slurm_conf},
        )  # fmt: skip
        assert out.stdout.split()[-1] == st.slurm_version
    print("bring-up seconds:", {r: round(s, 1) for r, s in clusters.seconds.items()})


def test_a_root_that_cannot_be_built_is_a_clear_error_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive unreachable (a mirror on a loopback port nobody listens on)."""
    monkeypatch.setenv(ENV_MIRROR, "http://127.0.0.1:9/debian")
    monkeypatch.setenv(ENV_ROOT_CACHE, str(tmp_path / "roots"))
    state = Path.home() / ".cache" / "slurm-sdk-tests" / f"badroot-{os.getpid()}"
    with pytest.raises(DevclusterError) as info:
        dc.up(state, release="24.11", port_base=env_port_base() + 80, nodes=2)
    message = str(info.value)
    assert "Could not build the root of Slurm 24.11 (Debian trixie)" in message
    assert "nothing was started" in message
    assert ENV_MIRROR in message
    # No half-built root, no state directory, no daemon.
    kept = [p.suffix for p in (tmp_path / "roots").iterdir()]
    assert sorted(kept) == [".lock", ".log"]  # mmdebstrap's output, the build lock
    assert not state.exists()


def test_a_daemon_that_fails_to_start_leaves_nothing_running() -> None:
    """sshd's port is taken (something listens there): `up` says so and stops what it had
    started, the root holder and the nodes' namespaces included."""
    release = _RELEASES[0]
    base = env_port_base() + 90
    state = _state_root() / f"release-{release}-{base}"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", base + 5))
        squatter.listen()
        with pytest.raises(DevclusterError, match=rf"Port {base + 5}, where .* sshd listens"):
            dc.up(state, release=release, port_base=base, nodes=2, containers=False)
    st = dc.status(state)
    assert not st.running
    assert all(pid is None for pid in st.daemons.values()), st.daemons
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"sdk{base}-" not in netns


def test_ranks_and_dependencies(on_release: Status, home_tmp: Path) -> None:
    """srun's ranks across both nodes (its step options and SLURM_* variables), an
    ``afterok`` chain, and a dependency that fails after the dependent was queued: from
    24.11 on, Slurm leaves that one pending (``DependencyNeverSatisfied``) and the
    tracker cancels it."""
    cluster = Cluster(
        backend_type="local", job_base_dir=str(home_tmp / "jobs"), default_partition="debug"
    )
    with cluster:
        # Two Python ranks and srun on a node: 64M is tight for what 26.05's accounting
        # counts (once: "Exceeded job memory limit", the step killed).
        ranks = jobfuncs.rank_facts.with_options(nodes=2, ntasks_per_node=2, mem="256M")()
        results = ranks.get_results(timeout=_TIMEOUT)
        assert [r["rank"] for r in results] == [0, 1, 2, 3]
        assert sorted(r["local_rank"] for r in results) == [0, 0, 1, 1]
        assert {r["host"] for r in results} == {"node1", "node2"}
        first = add(1, 1)
        assert add.after(first)(2, 1).get_result(timeout=_TIMEOUT) == 3
        doomed = add.after(fail_after(3, "late"))(1, 2)
        with pytest.raises(JobTerminatedError, match="a job it depends on failed"):
            doomed.get_result(timeout=_TIMEOUT)


def test_the_tutorial_runs_on_the_release(on_release: Status, home_tmp: Path) -> None:
    """Section 5 of the tutorial as written (local backend): capped segments, evaluation
    beside them, every artifact under the workflow's shared directory."""
    from tutorial import run_tutorial

    jobs = str(home_tmp / "jobs")
    _, state_path = run_tutorial(
        home_tmp, "--backend", "local", "--job-base-dir", jobs, "--partition", "debug"
    )
    shared = state_path.parent
    for epoch in range(3):
        assert (shared / "checkpoints" / f"epoch_{epoch:03d}.json").is_file()
        assert (shared / "metrics" / f"epoch_{epoch:03d}.json").is_file()


def test_preemption_requeues_and_usage_is_accounted(on_release: Status, home_tmp: Path) -> None:
    """A task pushed off its node by an urgent job is requeued by the release's Slurm and
    runs again to its result; its usage comes from the release's sacct."""
    from test_preemption import _preempt, _wait_running

    cluster = Cluster(
        backend_type="local", job_base_dir=str(home_tmp / "jobs"), default_partition="debug"
    )
    with cluster:
        job = jobfuncs.report_restarts(6)
        _wait_running(job.id)
        _preempt(job.id)
        assert job.get_result(timeout=180) >= 1
        assert job.requeue_count >= 1
        deadline = time.monotonic() + 60
        usage = job.usage
        while (usage is None or usage.source != "sacct") and time.monotonic() < deadline:
            time.sleep(1)
            usage = job.usage
        assert usage is not None and usage.source == "sacct" and usage.elapsed_s is not None


def test_the_command_line_and_doctor_answer(on_release: Status, home_tmp: Path) -> None:
    from click.testing import CliRunner

    from slurm.cli import main

    base = str(home_tmp / "jobs")
    with Cluster(backend_type="local", job_base_dir=base, default_partition="debug"):
        job = add(20, 22)
        assert job.get_result(timeout=_TIMEOUT) == 42
    runner = CliRunner(env={"COLUMNS": "250"})
    where = ["--backend", "local", "--job-base-dir", base]
    listed = runner.invoke(main, ["jobs", "list", *where], catch_exceptions=False)
    assert listed.exit_code == 0 and job.id in listed.output and "COMPLETED" in listed.output
    shown = runner.invoke(main, ["jobs", "show", job.id, *where], catch_exceptions=False)
    assert shown.exit_code == 0 and "42" in shown.output
    doctor = runner.invoke(main, ["doctor", "--json", *where], catch_exceptions=False)
    assert doctor.exit_code == 0, doctor.output


def test_running_jobs_are_polled_with_squeue_only_job_state(
    on_release: Status, home_tmp: Path
) -> None:
    """24.05 and later: while every watched job was last seen running, the tracker asks
    ``squeue --only-job-state``; the full squeue only before and after."""
    from jobfuncs import sleep_then

    sent: list[list[str]] = []
    with Cluster(
        backend_type="local", job_base_dir=str(home_tmp / "jobs"), default_partition="debug"
    ) as cluster:
        slurm = cluster.session.slurm
        run = slurm.run

        def recording(argv: Any, **kwargs: Any) -> Any:
            sent.append(list(argv))
            return run(argv, **kwargs)

        slurm.run = recording  # type: ignore[method-assign]
        job = sleep_then(8, "slept")
        assert job.get_result(timeout=_TIMEOUT) == "slept"
        assert slurm.knows_only_job_state()
    squeues = [a for a in sent if a[:1] == ["squeue"] and "--version" not in a]
    light = [a for a in squeues if "--only-job-state" in a]
    assert light, squeues
    assert all(a == ["squeue", *light[0][1:]] for a in light)
    assert f"--jobs={job.id}" in light[0]
    assert len(squeues) > len(light)  # the full one saw it pending, then running first
