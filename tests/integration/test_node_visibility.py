"""Paths the compute nodes cannot see are refused before anything is submitted.

Each node of the dev cluster has its own ``/tmp``: a job base directory or an
interpreter there exists on the login host (this machine) and on no node. The
preflight asks one node with one ``srun`` (``slurm._slurm.probe``) and refuses
with the path, the reason and what to do; nothing reaches ``sbatch``. Once the
nodes were seen to see a base directory and an interpreter, later clusters on
it ask no node again. On the local backend, a virtual environment the nodes
cannot start (a clone under ``/tmp``) is not refused: its jobs run in an
environment built from its base interpreter, as over SSH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from test_ssh_cluster import _ssh_cluster

from slurm import Cluster
from slurm._client.packaging import preflight_for
from slurm._slurm.probe import SEEN_FILE, NodeView
from slurm.devcluster import SshInfo
from slurm.errors import ConfigurationError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _base_python() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)


def test_a_job_base_dir_under_tmp_is_refused_before_submission(
    devcluster: object, node_local: Path
) -> None:
    from jobfuncs import add

    base = node_local / "jobs"
    with (
        Cluster(backend_type="local", job_base_dir=str(base), default_partition="debug"),
        pytest.raises(ConfigurationError) as caught,
    ):
        add(1, 2)
    message = str(caught.value)
    assert "nothing was submitted" in message
    assert f"cannot see job_base_dir '{base}'" in message
    assert "each node has its own" in message
    assert "pass job_base_dir= a directory on a filesystem" in message
    # Nothing was written for a job: only the preflight's own (checked) directories, the
    # index and the environments directory that shipped source goes to.
    assert {p.name for p in base.iterdir()} <= {".index", ".envs"}


def test_an_interpreter_under_tmp_is_refused_before_submission(
    devcluster: object, node_local: Path, tmp_path: Path
) -> None:
    from jobfuncs import add

    python = node_local / "python3"
    python.symlink_to(sys.executable)  # runs here, exists on no node
    base = tmp_path / "jobs"
    with (
        Cluster(
            backend_type="local",
            job_base_dir=str(base),
            python=str(python),
            default_partition="debug",
        ),
        pytest.raises(ConfigurationError) as caught,
    ):
        add(1, 2)
    message = str(caught.value)
    assert f"python_on_nodes: '{python}' runs on local but not on a compute node" in message
    assert "job_base_dir_on_nodes" not in message
    assert "Cluster(python=" in message
    assert not [p for p in base.iterdir() if not p.name.startswith(".")]


def test_what_the_nodes_saw_is_remembered_in_the_base_dir(
    devcluster: object, tmp_path: Path
) -> None:
    from jobfuncs import add

    base = tmp_path / "jobs"
    with Cluster(backend_type="local", job_base_dir=str(base), default_partition="debug") as c:
        assert add(2, 3).get_result(timeout=240) == 5
        report = preflight_for(c.session)
        assert report is not None and report.nodes is not None
        assert report.nodes.checked and report.nodes.ok and not report.nodes.cached
    # This interpreter, or (from a clone under /tmp) the base one its environment is built from.
    dirs, python = (base / SEEN_FILE).read_text().splitlines()
    assert dirs == f"dir|{base}"
    assert python in (f"python|{sys.executable}", f"python|{_base_python()}")
    with Cluster(backend_type="local", job_base_dir=str(base), default_partition="debug") as c:
        assert add(3, 4).get_result(timeout=240) == 7
        report = preflight_for(c.session)
        assert report is not None and report.nodes is not None and report.nodes.cached
    assert not list(base.glob(f"{SEEN_FILE}.*"))  # no token left behind


def test_a_new_base_dir_beside_one_the_nodes_saw_needs_no_srun(
    devcluster: object, devcluster_ssh: SshInfo, tmp_path: Path, node_local: Path
) -> None:
    """The first base directory's probe also asks a node about its parent, which the
    user's registry on the login host then remembers: the next base directory beside
    it is answered without an srun, locally and over SSH; one elsewhere is asked."""
    from jobfuncs import add

    def nodes_seen(cluster: Cluster) -> NodeView:
        with cluster as c:
            assert add(1, 1).get_result(timeout=240) == 2
            report = preflight_for(c.session)
            assert report is not None and report.nodes is not None and report.nodes.ok
            return report.nodes

    def local(base: Path) -> Cluster:
        return Cluster(backend_type="local", job_base_dir=str(base), default_partition="debug")

    assert not nodes_seen(local(tmp_path / "run-1")).cached  # this test's own registry
    registry = Path(os.environ["SLURM_SDK_SEEN_BY_NODES"]).read_text().splitlines()
    assert f"{os.uname().nodename}|near|{os.stat(tmp_path).st_dev}|{tmp_path}" in registry
    assert nodes_seen(local(tmp_path / "run-2")).cached
    # Over SSH, the registry in the login user's ~/.cache (which earlier tests may have
    # filled: the first may be answered already, the second always is).
    over_ssh = tmp_path / "over-ssh"
    over_ssh.mkdir()
    nodes_seen(_ssh_cluster(devcluster_ssh, over_ssh / "run-1"))
    assert nodes_seen(_ssh_cluster(devcluster_ssh, over_ssh / "run-2")).cached
    # A base directory on the login host's own /tmp is beneath nothing the nodes saw.
    with local(node_local / "jobs"), pytest.raises(ConfigurationError, match="cannot see job_b"):
        add(1, 2)


CLIENT = """
import sys
from slurm import Cluster
sys.path.insert(0, {tests!r})
from jobfuncs import add
with Cluster(backend_type="local", job_base_dir={base!r}, default_partition="debug") as c:
    print(add(20, 22).get_result(timeout=240))
"""


def test_a_virtualenv_the_nodes_cannot_start_runs_jobs_in_a_built_environment(
    devcluster: object, node_local: Path, tmp_path: Path
) -> None:
    """A client venv under /tmp (as in a clone there): the jobs' environment is built
    from its base interpreter in the job base directory, and the job runs."""
    venv = node_local / "venv"
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
    # This venv sees the same packages as ours (the SDK and its dependencies).
    site = next((venv / "lib").glob("python3.*/site-packages"))
    paths = [p for p in sys.path if p.endswith("site-packages") or p.endswith("/src")]
    (site / "ours.pth").write_text("\n".join([str(REPO / "src"), *paths]) + "\n")
    base = tmp_path / "jobs"
    script = CLIENT.format(tests=str(REPO / "tests" / "integration"), base=str(base))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_JOB")}
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=str(node_local),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "42"
    assert f"the compute nodes cannot start this interpreter ({venv}/bin/python)" in out.stderr
    assert (base / ".envs").is_dir()


def test_over_ssh_a_job_base_dir_under_tmp_is_refused_too(
    devcluster_ssh: SshInfo, node_local: Path
) -> None:
    from jobfuncs import add

    base = node_local / f"jobs-{uuid.uuid4().hex[:6]}"
    with (
        _ssh_cluster(devcluster_ssh, base),
        pytest.raises(ConfigurationError, match=f"cannot see job_base_dir '{base}'"),
    ):
        add(1, 2)
