"""The user's code reaches the cluster over SSH: a project outside the SDK, shipped as wheels.

A user project is written to a temporary directory (its own pyproject.toml, a
package with a task and a workflow) and run by a script in it with this
interpreter, over SSH to the dev cluster, with no ``python=``: the SDK builds
wheels of the project and of itself, ships them and creates an environment on
the cluster once; the tasks report where they ran from.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from nodepython import node_python
from tutorial import run_tutorial

from slurm import Cluster
from slurm._client.packaging import environment_for
from slurm._client.packaging.project import sdk_source_root, source_hash
from slurm._client.packaging.wheels import SDK_SOURCES
from slurm._wire.env import RUNNER_ENTRY
from slurm.devcluster import SshInfo
from slurm.errors import ConfigurationError

SDK_ROOT = sdk_source_root() or Path("/nonexistent")

PYPROJECT = """\
[project]
name = "orbit-analysis"
version = "0.3.0"
requires-python = ">=3.11"
dependencies = ["slurm-sdk", "cloudpickle"]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["orbit"]
"""

TASKS = '''\
"""The user's tasks: they report the interpreter and the files they run from."""

import sys

import slurm
from slurm import WorkflowContext, task, workflow


@task(time="00:05:00", mem="256M", cpus_per_task=1)
def where(x: int) -> dict:
    return {
        "x": x,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "module": __file__,
        "slurm": slurm.__file__,
    }


@workflow(time="00:10:00", mem="256M", cpus_per_task=1)
def survey(n: int, ctx: WorkflowContext) -> list:
    return [job.get_result() for job in [where(i) for i in range(n)]]
'''

RUN = '''\
"""Run the project's workflow on the cluster and print what happened as JSON."""

import json
import logging
import os
import sys
import time

from orbit.tasks import survey, where

from slurm import Cluster
from slurm._client.packaging import environment_for
from slurm._wire.env import RUNNER_ENTRY

logging.basicConfig(level=logging.INFO)  # the SDK's log to stderr: what it built
started = time.perf_counter()
with Cluster(
    backend_type="ssh",
    hostname=os.environ["SLURM_SDK_TEST_SSH_ALIAS"],
    username=sys.argv[2],
    job_base_dir=sys.argv[1],
    default_partition="debug",
) as cluster:
    env = environment_for(cluster.session)
    setup = time.perf_counter() - started
    task_result = where(7).get_result(timeout=240)
    flow_result = survey(2).get_result(timeout=240) if sys.argv[3] == "flow" else None
print("RESULT " + json.dumps({
    "setup": setup,
    "env": {"key": env.key, "path": env.path, "python": env.python, "created": env.created,
            "install": env.install, "timings": env.timings},
    "task": task_result,
    "flow": flow_result,
}))
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user-project") / "orbit-analysis"
    (root / "orbit").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "orbit" / "__init__.py").write_text('"""Orbit analysis."""\n')
    (root / "orbit" / "tasks.py").write_text(TASKS)
    (root / "run.py").write_text(RUN)
    return root


def _run(project: Path, base: Path, user: str, mode: str = "task") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "run.py", str(base), user, mode],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=280,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stdout + out.stderr
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result["log"] = out.stderr
    return result


def _assert_ran_from_env(report: dict[str, Any], envs: Path, project: Path) -> None:
    env_dir = report["env"]["path"]
    assert env_dir.startswith(str(envs) + "/")
    site = f"{env_dir}/venv/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    for result in [report["task"], *(report["flow"] or [])]:
        assert result["executable"] == f"{env_dir}/venv/bin/python"
        assert result["prefix"] == f"{env_dir}/venv"
        assert result["module"] == f"{site}/orbit/tasks.py"
        assert result["slurm"] == f"{site}/slurm/__init__.py"
        for path in (result["executable"], result["module"], result["slurm"]):
            assert not path.startswith(sys.prefix)  # not the client's virtualenv
            assert not path.startswith(str(project))  # not the project's sources


def _mtimes(directory: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(directory.rglob("*")) if p.is_file()}


def _ssh_cluster(ssh: SshInfo, tmp_path: Path, **kwargs: Any) -> Cluster:
    """A cluster reached over the dev cluster's SSH alias, jobs under ``tmp_path/jobs``."""
    return Cluster(
        backend_type="ssh",
        hostname=ssh.alias,
        username=ssh.username,
        job_base_dir=str(tmp_path / "jobs"),
        default_partition="debug",
        **kwargs,
    )


def _where(project: Path) -> Any:
    """The project's ``orbit.tasks.where`` task, imported from its sources here."""
    sys.path.insert(0, str(project))
    try:
        from orbit.tasks import where  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(project))
    return where


def test_project_runs_from_its_shipped_wheel_and_the_env_is_reused(
    devcluster_ssh: SshInfo, project: Path, tmp_path: Path
) -> None:
    base = tmp_path / "jobs"
    first = _run(project, base, devcluster_ssh.username, "flow")
    envs = base / ".envs"
    _assert_ran_from_env(first, envs, project)
    assert first["env"]["created"] is True
    assert first["env"]["install"] == "offline"
    assert [r["x"] for r in first["flow"]] == [0, 1]
    env_dir = Path(first["env"]["path"])
    ready = json.loads((env_dir / "ready.json").read_text())
    assert ready["key"] == first["env"]["key"] and ready["install"] == "offline"
    assert any(name.startswith("orbit_analysis-0.3.0") for name in ready["wheels"])
    print("first run setup", first["setup"], first["env"]["timings"])

    # Others may edit the SDK's checkout meanwhile (a new SDK wheel is a new env, rightly):
    # judge reuse on two runs between which the SDK's sources did not change.
    for _ in range(3):
        sdk_before = source_hash(SDK_ROOT, SDK_SOURCES)
        previous = _run(project, base, devcluster_ssh.username)
        env_dir = Path(previous["env"]["path"])
        store = _mtimes(envs / ".store")
        ready_mtime = (env_dir / "ready.json").stat().st_mtime_ns
        listing = sorted(p.name for p in envs.iterdir())
        second = _run(project, base, devcluster_ssh.username)
        if source_hash(SDK_ROOT, SDK_SOURCES) == sdk_before:
            break
    print("second run setup", second["setup"], second["env"]["timings"])
    _assert_ran_from_env(second, envs, project)
    assert second["env"]["created"] is False
    assert second["env"]["key"] == previous["env"]["key"]
    assert (env_dir / "ready.json").stat().st_mtime_ns == ready_mtime
    assert _mtimes(envs / ".store") == store  # nothing uploaded again
    assert sorted(p.name for p in envs.iterdir()) == listing  # no new environment
    # The client rebuilt nothing (how long looking it up took is for `make bench`).
    assert "building a wheel of" not in second["log"], second["log"]


def test_two_clusters_preparing_the_same_env_create_it_once(
    devcluster_ssh: SshInfo, project: Path, tmp_path: Path
) -> None:
    base = tmp_path / "jobs"
    procs = [
        subprocess.Popen(
            [sys.executable, "run.py", str(base), devcluster_ssh.username, "task"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reports = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=280)
        assert proc.returncode == 0, stdout + stderr
        line = [x for x in stdout.splitlines() if x.startswith("RESULT ")][-1]
        reports.append(json.loads(line[len("RESULT ") :]))
    assert sorted(r["env"]["created"] for r in reports) == [False, True]
    assert reports[0]["env"]["key"] == reports[1]["env"]["key"]
    for report in reports:
        _assert_ran_from_env(report, base / ".envs", project)
    assert not (Path(reports[0]["env"]["path"]) / ".lock").exists()


def test_env_created_with_venv_and_pip_when_uv_is_not_used(
    devcluster_ssh: SshInfo, project: Path, tmp_path: Path
) -> None:
    """Clusters without uv: ``python3 -m venv`` and pip, offline from the shipped wheels;
    the earlier SDK's ``dependencies`` installed beside the project, which does not need them."""
    packaging = {"project": str(project), "installer": "pip", "dependencies": ["iniconfig"]}
    with _ssh_cluster(devcluster_ssh, tmp_path, packaging=packaging) as cluster:
        env = environment_for(cluster.session)
        assert env is not None and env.created and env.install == "offline"
        print("pip env created in", env.timings)
        assert (Path(env.path) / "venv" / "bin" / "pip").exists()  # made by venv, not uv
        installed = [p.name for p in (Path(env.path) / "venv").glob("lib/python*/site-packages/*")]
        assert "iniconfig" in installed, installed
        result = _where(project)(3).get_result(timeout=240)
    assert result["executable"] == env.python
    assert result["module"].startswith(env.path + "/venv/lib/")


def test_a_callbacks_job_modules_join_the_built_environment(
    devcluster_ssh: SshInfo, project: Path, tmp_path: Path
) -> None:
    """DebugCallback imports debugpy in its hook, which no closure walk sees: its
    ``job_modules`` put this client's debugpy in the environment built over SSH."""
    from slurm.callbacks import DebugCallback

    debug = DebugCallback(port=20000 + os.getpid() % 20000)
    with _ssh_cluster(
        devcluster_ssh, tmp_path, packaging={"project": str(project)}, callbacks=[debug]
    ):
        job = _where(project).with_options(mem="512M")(4)  # debugpy's adapter counts in it
        result = job.get_result(timeout=240)
        stderr = job.get_stderr()
    assert result["executable"].startswith(str(tmp_path / "jobs" / ".envs"))
    assert "debugpy listens on" in stderr, stderr
    assert "debugpy is not installed" not in stderr


def test_explicit_interpreter_is_used_as_is_without_packaging(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    with Cluster(
        backend_type="ssh",
        hostname=devcluster_ssh.alias,
        username=devcluster_ssh.username,
        job_base_dir=str(tmp_path / "jobs"),
        python=node_python(),
    ) as cluster:
        assert cluster.python == node_python()
        assert environment_for(cluster.session) is None
        report = cluster.diagnose()
    assert report["ok"] is True, report
    assert report["python"]["modules"]["slurm.runner"] == "ok"
    # No environment was built: the environments directory holds at most the (checked,
    # private) directory for shipped source.
    envs = tmp_path / "jobs" / ".envs"
    assert {p.name for p in envs.iterdir()} <= {".code"} if envs.exists() else True


def test_interpreter_without_the_sdk_is_refused_before_submission(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    bare = tmp_path / "bare-python"
    bare.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            exec {sys.base_prefix}/bin/python3 -I "$@"
            """
        )
    )
    bare.chmod(0o755)
    with Cluster(
        backend_type="ssh",
        hostname=devcluster_ssh.alias,
        username=devcluster_ssh.username,
        job_base_dir=str(tmp_path / "jobs"),
        python=str(bare),
    ) as cluster:
        diagnosis = cluster.diagnose()
        with pytest.raises(ConfigurationError, match=r"cannot import slurm\.runner"):
            cluster.submit(_add)(1, 2)
    assert diagnosis["ok"] is False
    assert any("slurm.runner" in p for p in diagnosis["problems"])
    assert not list((tmp_path / "jobs" / ".index").glob("*"))  # nothing submitted


def _add(a: int, b: int) -> int:
    return a + b


def test_tutorial_section_5_over_ssh_verbatim(devcluster_ssh: SshInfo, tmp_path: Path) -> None:
    """`python -m slurm.examples.parallel_train_eval.workflow --hostname ... --username ...`."""
    _, state_path = run_tutorial(
        tmp_path,
        "--hostname",
        devcluster_ssh.alias,
        "--username",
        devcluster_ssh.username,
        "--partition",
        "debug",
        timeout=280,
    )
    state = json.loads(state_path.read_text())
    assert state["epochs"] == 3
    for epoch in range(3):
        metrics = json.loads(
            (state_path.parent / "metrics" / f"epoch_{epoch:03d}.json").read_text()
        )
        assert metrics["steps_completed"] == 10
    # The workflow ran in the environment shipped to the cluster, not in this virtualenv.
    workflow_dir = state_path.parent.parent
    script = (workflow_dir / "job.sh").read_text()
    envs = Path(os.path.expanduser("~/.slurm-sdk/jobs/.envs"))
    assert f"{envs}/" in script and f"/venv/bin/python -P {shlex.join(RUNNER_ENTRY)}" in script
    assert sys.prefix not in script
