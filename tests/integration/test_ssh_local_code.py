"""Plain directories reach the cluster over SSH: no pyproject, just main.py beside its modules.

A user directory (``main.py``, a helper module ``helpers.py``, a package
``stats/`` reading a JSON file beside its module) is written to a temporary
directory with no ``pyproject.toml`` above it and run by this interpreter,
over SSH to the dev cluster. The SDK ships the local modules the call needs,
once per content, and the job imports them from that copy only: not from the
directory the job runs in, which holds decoys. With the local backend the same
directory runs from a snapshot too, even from a directory the nodes cannot see;
a task can have its own interpreter.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nodepython import node_python

from slurm import Cluster, task
from slurm._client.packaging import environment_for
from slurm._wire.env import RUNNER_ENTRY
from slurm.devcluster import SshInfo
from slurm.errors import ConfigurationError

HELPERS = '''\
"""A helper module beside the script; it defines a task too (travels by reference)."""

from pathlib import Path

import iniconfig  # installed here, not by the SDK: the job's environment gets it
from stats.describe import summary

from slurm import WorkflowContext, task, workflow


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


@task(time="00:05:00", mem="256M")
def spread(xs: list[float]) -> dict:
    return {"summary": summary(xs), "file": __file__, "iniconfig": iniconfig.__file__}


@workflow(time="00:05:00", mem="256M")
def survey(xs: list[float], ctx: WorkflowContext) -> list:
    """Runs on the cluster and submits tasks from there: they get the same source."""
    return [spread(xs).get_result(), spread(xs[:1]).get_result()]
'''

STATS_INIT = '"""A small package with a data file."""\n'

DESCRIBE = """\
import json
from pathlib import Path

_TABLE = json.loads((Path(__file__).parent / "table.json").read_text())


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "scaled_max": max(xs) * _TABLE["scale"], "file": __file__}
"""

MAIN = '''\
"""The user's script: a task defined here (by value) using helpers and stats."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import helpers
from stats import describe

from slurm import Cluster, task
from slurm._wire.env import RUNNER_ENTRY


@task(time="00:05:00", mem="256M", chdir=sys.argv[3])
def analyse(xs: list[float]) -> dict:
    return {
        "mean": helpers.mean(xs),
        "summary": describe.summary(xs),
        "helpers": helpers.__file__,
        "path0": sys.path[0],
        "cwd": os.getcwd(),
        "decoy_visible": importlib.util.find_spec("decoy") is not None,
    }


backend = sys.argv[5] if len(sys.argv) > 5 else "ssh"
with Cluster(
    backend_type=backend,
    hostname=os.environ["SLURM_SDK_TEST_SSH_ALIAS"] if backend == "ssh" else None,
    username=sys.argv[2] if backend == "ssh" else None,
    job_base_dir=sys.argv[1],
    default_partition="debug",
) as cluster:
    first = analyse([1.0, 2.0, 3.0])
    second = helpers.spread([4.0, 8.0])
    report = {"analyse": first.get_result(timeout=240), "spread": second.get_result(timeout=240)}
    if sys.argv[4] == "flow":
        report["survey"] = helpers.survey([2.0, 3.0]).get_result(timeout=240)
    report["scripts"] = [first.get_script(), second.get_script()]
print("RESULT " + json.dumps(report))
'''


@pytest.fixture()
def user_dir(tmp_path: Path) -> Path:
    root = tmp_path / "analysis"
    files = {
        "main.py": MAIN,
        "helpers.py": HELPERS,
        "stats/__init__.py": STATS_INIT,
        "stats/describe.py": DESCRIBE,
        "stats/table.json": json.dumps({"scale": 10}),
        "notes.txt": "not Python: stays home\n",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert not any((p / "pyproject.toml").exists() for p in [root, *root.parents])
    return root


@pytest.fixture()
def decoys(tmp_path: Path) -> Path:
    """The job's working directory: modules that must not be imported from there."""
    workdir = tmp_path / "job-cwd"
    (workdir / "stats").mkdir(parents=True)
    (workdir / "helpers.py").write_text("raise ImportError('the decoy helpers was imported')\n")
    (workdir / "stats" / "__init__.py").write_text("raise ImportError('decoy stats')\n")
    (workdir / "decoy.py").write_text("x = 1\n")
    # Imported by the runner itself before it sets sys.path: python -P keeps it out.
    (workdir / "cloudpickle.py").write_text("raise ImportError('decoy cloudpickle')\n")
    return workdir


def _run(
    user_dir: Path, base: Path, user: str, workdir: Path, mode: str = "task", backend: str = "ssh"
) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "main.py", str(base), user, str(workdir), mode, backend],
        cwd=user_dir,
        capture_output=True,
        text=True,
        timeout=400,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stdout + out.stderr
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _code_dirs(base: Path) -> list[Path]:
    return sorted((base / ".envs" / ".code").iterdir())


def test_plain_directory_runs_over_ssh_from_shipped_source_reused_across_runs(
    devcluster_ssh: SshInfo, user_dir: Path, decoys: Path, tmp_path: Path
) -> None:
    base = tmp_path / "jobs"
    first = _run(user_dir, base, devcluster_ssh.username, decoys, "flow")
    (code,) = _code_dirs(base)  # both calls of the run: one upload
    analyse, spread = first["analyse"], first["spread"]
    assert analyse["mean"] == 2.0
    assert analyse["summary"]["scaled_max"] == 30.0  # read stats/table.json on the cluster
    assert spread["summary"] == {"n": 2, "scaled_max": 80.0, "file": f"{code}/stats/describe.py"}
    # The installed distribution helpers imports was added to the job's environment,
    # pinned to the version installed here.
    env_dir = Path(spread["iniconfig"].split("/venv/", 1)[0])
    assert env_dir.parent == base / ".envs"
    pin = f"iniconfig=={importlib.metadata.version('iniconfig')}"
    assert pin in (env_dir / "requirements.txt").read_text().splitlines()
    assert analyse["helpers"] == spread["file"] == f"{code}/helpers.py"
    assert analyse["path0"] == str(code)
    assert analyse["cwd"] == str(decoys)  # chdir= is honoured, and nothing there is importable
    assert analyse["decoy_visible"] is False
    shipped = [p for p in code.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sorted(p.name for p in shipped) == [
        "__init__.py",
        "describe.py",
        "helpers.py",
        "table.json",
    ]
    # The workflow's own tasks, submitted on the cluster, import the same shipped copy.
    assert [r["file"] for r in first["survey"]] == [f"{code}/helpers.py"] * 2
    assert [r["summary"]["scaled_max"] for r in first["survey"]] == [30.0, 20.0]
    for script in first["scripts"]:
        assert f"SLURM_SDK_CODE_DIR={code}" in script.replace("'", "")
        assert f" -P {shlex.join(RUNNER_ENTRY)} " in script

    mtime = code.stat().st_mtime_ns
    second = _run(user_dir, base, devcluster_ssh.username, decoys)
    assert _code_dirs(base) == [code]  # reused, not uploaded again
    assert code.stat().st_mtime_ns == mtime
    assert second["analyse"] == analyse
    assert not list((base / ".envs" / ".code").glob(".incoming-*"))

    # A changed data file is new content: shipped anew, and the job reads it.
    (user_dir / "stats" / "table.json").write_text(json.dumps({"scale": 100}))
    third = _run(user_dir, base, devcluster_ssh.username, decoys)
    assert third["analyse"]["summary"]["scaled_max"] == 300.0
    assert len(_code_dirs(base)) == 2


def test_plain_directory_runs_with_the_local_backend_from_a_snapshot(
    devcluster: object, user_dir: Path, tmp_path: Path
) -> None:
    """Already on the cluster: the local source is snapshotted into the job base dir as
    over SSH (by content, once), and the job imports that copy."""
    base = tmp_path / "jobs"
    report = _run(user_dir, base, "", user_dir, "flow", "local")
    (code,) = _code_dirs(base)
    assert report["analyse"]["mean"] == 2.0
    assert report["analyse"]["helpers"] == f"{code}/helpers.py"
    assert report["analyse"]["path0"] == str(code)
    assert report["spread"]["summary"]["scaled_max"] == 80.0
    # The workflow's tasks, submitted on its node, run the same snapshot.
    assert [r["file"] for r in report["survey"]] == [f"{code}/helpers.py"] * 2
    assert [r["summary"]["scaled_max"] for r in report["survey"]] == [30.0, 20.0]


NODE_LOCAL = """import os
from pathlib import Path

from slurm import task

VERSION = "{version}"


@task(time="00:02:00", mem="64M")
def version() -> dict:
    return {{"version": VERSION, "file": __file__, "cwd": os.getcwd()}}
"""


def test_code_in_a_directory_the_nodes_cannot_see_runs_from_its_snapshot(
    devcluster: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script and its module in /tmp on the login host (each node has its own /tmp),
    the local backend: the job runs the snapshot taken at submission (an edit made
    while it is queued is not seen) in its job directory, saying why on stderr."""
    import tempfile
    import uuid

    from jobfuncs import sleep_then

    work = Path(tempfile.mkdtemp(prefix="sdk-node-local-", dir="/tmp"))
    name = f"node_local_{uuid.uuid4().hex[:8]}"
    module = work / f"{name}.py"
    module.write_text(NODE_LOCAL.format(version="v1"))
    monkeypatch.syspath_prepend(str(work))
    monkeypatch.chdir(work)
    try:
        imported = importlib.import_module(name)
        base = tmp_path / "jobs"
        with Cluster(backend_type="local", job_base_dir=str(base), default_partition="debug"):
            gate = sleep_then(3)
            job = imported.version.after(gate)()
            module.write_text(NODE_LOCAL.format(version="v2"))  # edited while it waits
            result = job.get_result(timeout=240)
            stderr = job.get_stderr()
        # Two snapshots: the gate's module (jobfuncs) and this one.
        (code,) = [d for d in _code_dirs(base) if (d / f"{name}.py").exists()]
        assert (code / f"{name}.py").read_text() == NODE_LOCAL.format(version="v1")
        assert result == {
            "version": "v1",
            "file": f"{code}/{name}.py",
            "cwd": job.job_dir,
        }
        assert f"cannot see the working directory {work}" in stderr
        assert f"the job runs in {job.job_dir} instead" in stderr
        assert "couldn't chdir" not in stderr  # Slurm itself starts in the job directory
    finally:
        sys.modules.pop(name, None)
        module.unlink()
        work.rmdir()


def test_a_task_with_its_own_interpreter_or_packaging(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    def where() -> str:  # travels by value: this test module is not needed on the cluster
        import sys

        return sys.executable

    default = task(time="00:05:00", mem="256M")(where)
    own = task(time="00:05:00", mem="256M", python=node_python())(where)
    missing = str(tmp_path / "no-such-python")
    unusable = task(packaging={"type": "none", "python": missing})(where)
    with Cluster(
        backend_type="ssh",
        hostname=devcluster_ssh.alias,
        username=devcluster_ssh.username,
        job_base_dir=str(tmp_path / "jobs"),
        default_partition="debug",
    ) as cluster:
        env = environment_for(cluster.session)
        assert env is not None
        jobs = [default(), own(), own.with_options(python=env.python)()]
        assert [job.get_result(timeout=240) for job in jobs] == [
            env.python,
            node_python(),
            env.python,
        ]
        with pytest.raises(ConfigurationError, match="no-such-python"):
            unusable()
    assert len(list((tmp_path / "jobs" / ".index").iterdir())) == 3  # nothing more submitted
