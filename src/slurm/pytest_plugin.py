"""A pytest plugin for testing your own workflows against a real Slurm.

Installed with slurm-sdk (entry point ``pytest11``), so a test only has to ask
for the fixture::

    from slurm import task

    @task(time="00:01:00", mem="100M")
    def double(x: int) -> int:
        return 2 * x

    def test_double(slurm_cluster):
        assert double(21).get_result(timeout=120) == 42

Fixtures:

- ``slurm_cluster``: a :class:`~slurm.Cluster`, entered (so calling a task
  submits it) and closed after the test. A test that uses it runs once per
  backend (``[local]``, ``[ssh]``); one test can choose its own with
  ``@pytest.mark.parametrize("slurm_backend", ["ssh"], indirect=True)``.
- ``slurm_cluster_options``: the keyword arguments that ``Cluster`` gets, per
  backend; override it in your ``conftest.py`` to add ``default_partition``,
  ``packaging``, ``callbacks``...
- ``slurm_devcluster``: the dev cluster's :class:`~slurm.devcluster.Status`,
  brought up once per session when it is not running. A running one is used
  as it is: never restarted, never taken down.

Which cluster (command-line option, else environment variable):

- ``--slurm-cluster`` / ``SLURM_SDK_TEST_CLUSTER``: ``devcluster`` (default:
  the dev cluster on this machine, see ``slurm devcluster``),
  ``local`` (the Slurm this machine already submits to), or an SSH host or
  ``~/.ssh/config`` alias of a real cluster.
- ``--slurm-backend`` / ``SLURM_SDK_TEST_BACKENDS``: ``local``, ``ssh`` or
  ``local,ssh`` (the default for the dev cluster; a named host is ``ssh``
  only, ``local`` is ``local`` only).
- ``--slurm-job-base-dir`` / ``SLURM_SDK_TEST_JOB_BASE_DIR``: where the job
  directories go on the cluster (one subdirectory per backend); default: the
  session's temporary directory on the dev cluster (under ``/var/tmp`` when
  that is under ``/tmp``, which each compute node has to itself), the SDK's default
  (``~/.slurm-sdk/jobs``) elsewhere.

Test modules that use ``slurm_cluster`` are shipped to the jobs by value
(cloudpickle), since the cluster cannot import them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from slurm import Cluster
    from slurm.devcluster import Status

__all__ = [
    "ENV_BACKENDS",
    "ENV_CLUSTER",
    "ENV_JOB_BASE_DIR",
    "slurm_cluster",
    "slurm_cluster_options",
    "slurm_devcluster",
]

ENV_CLUSTER = "SLURM_SDK_TEST_CLUSTER"
ENV_BACKENDS = "SLURM_SDK_TEST_BACKENDS"
ENV_JOB_BASE_DIR = "SLURM_SDK_TEST_JOB_BASE_DIR"
_DEVCLUSTER = "devcluster"
_BACKENDS = ("local", "ssh")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("slurm", "slurm-sdk: test workflows against a real Slurm")
    group.addoption(
        "--slurm-cluster",
        default=None,
        help=f"'devcluster' (default), 'local', or an SSH host/alias [env {ENV_CLUSTER}]",
    )
    group.addoption(
        "--slurm-job-base-dir",
        default=None,
        help="job directories on the cluster (default: a temporary directory on the dev "
        f"cluster, the SDK's default elsewhere) [env {ENV_JOB_BASE_DIR}]",
    )
    group.addoption(
        "--slurm-backend",
        default=None,
        help=f"local, ssh or local,ssh: the backends slurm_cluster runs with [env {ENV_BACKENDS}]",
    )


def _target(config: pytest.Config) -> str:
    value = config.getoption("--slurm-cluster") or os.environ.get(ENV_CLUSTER) or _DEVCLUSTER
    return str(value).strip()


def _backends(config: pytest.Config) -> list[str]:
    target = _target(config)
    raw = config.getoption("--slurm-backend") or os.environ.get(ENV_BACKENDS)
    if not raw:
        return {_DEVCLUSTER: ["local", "ssh"], "local": ["local"]}.get(target, ["ssh"])
    backends = [b.strip().lower() for b in str(raw).split(",") if b.strip()]
    unknown = [b for b in backends if b not in _BACKENDS]
    if unknown or not backends:
        raise pytest.UsageError(
            f"--slurm-backend / {ENV_BACKENDS}: {raw!r} is not one of local, ssh, local,ssh"
        )
    if target == "local" and "ssh" in backends:
        raise pytest.UsageError(
            "--slurm-cluster local means this machine's Slurm without SSH: use "
            "--slurm-backend local, or name an SSH host with --slurm-cluster"
        )
    if target not in (_DEVCLUSTER, "local") and "local" in backends:
        raise pytest.UsageError(
            f"--slurm-cluster {target} is reached over SSH: use --slurm-backend ssh "
            "(the local backend needs Slurm on this machine: --slurm-cluster local)"
        )
    return backends


def pytest_configure(config: pytest.Config) -> None:
    _backends(config)  # a bad option is a usage error before anything is collected


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    chosen = any(
        "slurm_backend" in _argnames(marker.args[0] if marker.args else "")
        for marker in metafunc.definition.iter_markers("parametrize")
    )
    if "slurm_cluster" in metafunc.fixturenames and not chosen:
        metafunc.parametrize(
            "slurm_backend", _backends(metafunc.config), indirect=True, scope="session"
        )


def _argnames(names: Any) -> list[str]:
    if isinstance(names, str):
        return [n.strip() for n in names.split(",")]
    return [str(n) for n in names]


@pytest.fixture(scope="session")
def slurm_backend(request: pytest.FixtureRequest) -> str:
    """The backend of this run of a ``slurm_cluster`` test: ``local`` or ``ssh``."""
    return str(getattr(request, "param", "local"))


@pytest.fixture(scope="session")
def slurm_devcluster(request: pytest.FixtureRequest) -> Status | None:
    """The dev cluster, started once if it is not running; ``None`` for another cluster.

    A running dev cluster is used as it is (never restarted or stopped), so
    tests can share it with other sessions.
    """
    if _target(request.config) != _DEVCLUSTER:
        return None
    import slurm.devcluster as dc
    from slurm.errors import SlurmError

    try:
        status = dc.status()
        if not status.running:
            status = dc.up()
    except SlurmError as exc:
        pytest.fail(f"the Slurm dev cluster could not start: {exc}", pytrace=False)
    if not status.running:
        pytest.fail(
            f"the Slurm dev cluster is not running after `up`; see its logs in {status.log_dir}",
            pytrace=False,
        )
    return status


@pytest.fixture(scope="session")
def _slurm_job_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's temporary directory, unless it is under ``/tmp``: the dev cluster's
    compute nodes each have their own ``/tmp``, so the jobs go under ``/var/tmp``
    (shared by every node) instead, removed at the end of the session."""
    root = tmp_path_factory.mktemp("slurm-jobs")
    if not root.resolve().is_relative_to("/tmp"):  # noqa: S108 (avoiding it, not using it)
        yield root
        return
    shared = Path(tempfile.mkdtemp(prefix="slurm-sdk-pytest-", dir="/var/tmp"))
    yield shared
    shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="session")
def _slurm_node_python(slurm_devcluster: Status | None, _slurm_job_root: Path) -> str | None:
    """On the dev cluster, this interpreter if its nodes can start it; else (a virtual
    environment under ``/tmp``, which only this host has) the environment the SDK
    builds from it for jobs, with the pytest that test modules import."""
    if slurm_devcluster is None:
        return None
    from slurm import Cluster

    with Cluster(
        backend_type="local",
        job_base_dir=str(_slurm_job_root / "python"),
        default_partition=slurm_devcluster.default_partition,
        packaging={"dependencies": [f"pytest=={pytest.__version__}"]},
    ) as cluster:
        return cluster.python


@pytest.fixture
def slurm_cluster_options(
    slurm_backend: str,
    slurm_devcluster: Status | None,
    _slurm_job_root: Path,
    _slurm_node_python: str | None,
    request: pytest.FixtureRequest,
) -> dict[str, Any]:
    """Keyword arguments for ``Cluster(...)``; override this fixture to change them.

    On the dev cluster (this machine): jobs run with this interpreter (or, when
    the nodes cannot start it, an environment built from it) and go in the
    session's temporary directory. On a named cluster: the SDK's defaults
    (``~/.slurm-sdk/jobs``, your code shipped as wheels).
    """
    target = _target(request.config)
    options: dict[str, Any] = {"backend_type": slurm_backend}
    if slurm_devcluster is not None:
        # Not given, the local backend builds that environment per call, with what each
        # call imports.
        if slurm_backend == "ssh" or _slurm_node_python == sys.executable:
            options["python"] = _slurm_node_python
        options["job_base_dir"] = str(_slurm_job_root / slurm_backend)
        options["default_partition"] = slurm_devcluster.default_partition
        if slurm_backend == "ssh":
            options["hostname"] = slurm_devcluster.ssh.alias
            options["username"] = slurm_devcluster.ssh.username
    elif slurm_backend == "ssh":
        options["hostname"] = target
    job_base_dir = request.config.getoption("--slurm-job-base-dir") or os.environ.get(
        ENV_JOB_BASE_DIR
    )
    if job_base_dir:
        options["job_base_dir"] = f"{str(job_base_dir).rstrip('/')}/{slurm_backend}"
    return options


@pytest.fixture
def slurm_cluster(
    slurm_cluster_options: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """A ``Cluster`` on the test cluster, entered for the test and closed after it."""
    import cloudpickle

    from slurm import Cluster

    module = getattr(request, "module", None)
    if module is not None and module.__name__ != "__main__":
        cloudpickle.register_pickle_by_value(module)
    options = dict(slurm_cluster_options)
    backend = options.pop("backend_type", "local")
    cluster = Cluster(backend, **options)
    try:
        with cluster:
            yield cluster
    finally:
        cluster.close()
