"""cache=True on the dev cluster: reruns that submit nothing, edits that invalidate exactly
what they touch, a partly cached map, a workflow's child, and ``slurm cache``.

Each rerun is a new client process (``_run``): a program run again, its modules
written into the test's directory and edited between runs. The wall times of
the sweep are printed (``-s`` shows them), never asserted.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jobfuncs
import pytest
from click.testing import CliRunner
from slurmrecords import wait_for_records

from slurm import Cluster
from slurm.cli import main
from slurm.devcluster import SshInfo

DRIVER = """
import json, sys, time
import importlib
from slurm import Cluster
from slurm.devcluster import SshInfo

base, calls = sys.argv[1], json.loads(sys.argv[2])
with Cluster(backend_type="local", job_base_dir=base, default_partition="debug") as cluster:
    began = time.monotonic()
    jobs = [getattr(importlib.import_module(m), f)(arg) for m, f, arg in calls]
    results = [job.get_result(timeout=300) for job in jobs]
    wall = time.monotonic() - began
report = {
    "results": results,
    "ids": [job.id for job in jobs],
    "cached": [job.cached is not None for job in jobs],
    "wall": wall,
}
print("RESULT " + json.dumps(report))
"""

MODULES = {
    "sweep.py": (
        "import os\nfrom slurm import task\n\n"
        "@task(cache=True, time='00:02:00', mem='64M', job_name=os.environ['CACHE_TEST_NAME'])\n"
        "def simulate(seed):\n    return {'seed': seed, 'value': (seed * 7919) % 101}\n"
    ),
    "helper.py": "def offset():\n    return 100\n",
    "stage_a.py": (
        "from slurm import task\nimport helper\n\n"
        "@task(cache=True, time='00:02:00', mem='64M')\n"
        "def a(x):\n    return x + helper.offset()\n"
    ),
    "stage_b.py": (
        "from slurm import task\n\n"
        "@task(cache=True, time='00:02:00', mem='64M')\n"
        "def b(x):\n    return x * 10\n"
    ),
}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "driver.py").write_text(DRIVER)
    for name, text in MODULES.items():
        (root / name).write_text(text)
    return root


def _run(project: Path, base: Path, calls: list[list[Any]], name: str = "") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "driver.py", str(base), json.dumps(calls)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            "CACHE_TEST_NAME": name or "cache-test",
        },
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stdout + out.stderr
    report: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return report


def _named(name: str, expected: int, timeout: float = 60) -> list[str]:
    """The ids of the jobs named ``name`` that accounting knows, once it knows ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "--name", name, "-S", "now-2hours", "-o", "JobID"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ids = sorted(line.strip() for line in out.splitlines() if line.strip())
        if len(ids) >= expected or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_a_sweep_run_twice_submits_every_call_then_none(
    devcluster: object, project: Path, tmp_path: Path
) -> None:
    name = f"cache-sweep-{secrets.token_hex(4)}"
    calls = [["sweep", "simulate", seed] for seed in range(20)]
    first = _run(project, tmp_path / "jobs", calls, name)
    assert first["cached"] == [False] * 20 and len(set(first["ids"])) == 20
    assert _named(name, 20) == sorted(first["ids"])  # sacct: 20 jobs
    second = _run(project, tmp_path / "jobs", calls, name)
    assert second["cached"] == [True] * 20
    assert second["ids"] == first["ids"]  # each answered by the run that made it
    assert second["results"] == first["results"]
    # sacct agrees: still the same 20 jobs (a new one would show within seconds)
    assert _named(name, 21, timeout=5) == sorted(first["ids"])
    print(f"\nsweep of 20: first run {first['wall']:.2f} s, second run {second['wall']:.2f} s")


def test_editing_a_helper_or_a_body_invalidates_exactly_the_calls_it_touches(
    devcluster: object, project: Path, tmp_path: Path
) -> None:
    base = tmp_path / "jobs"
    calls = [["stage_a", "a", 1], ["stage_a", "a", 2], ["stage_b", "b", 1], ["stage_b", "b", 2]]
    first = _run(project, base, calls)
    assert first["results"] == [101, 102, 10, 20] and not any(first["cached"])
    assert _run(project, base, calls)["cached"] == [True] * 4

    _edit(project / "helper.py", "return 100", "return 200")  # stage_a imports it
    helper_edited = _run(project, base, calls)
    assert helper_edited["cached"] == [False, False, True, True]
    assert helper_edited["results"] == [201, 202, 10, 20]
    assert helper_edited["ids"][2:] == first["ids"][2:]

    _edit(project / "stage_b.py", "return x * 10", "return x * 1000")  # b's body
    body_edited = _run(project, base, calls)
    assert body_edited["cached"] == [True, True, False, False]
    assert body_edited["results"] == [201, 202, 1000, 2000]
    assert body_edited["ids"][:2] == helper_edited["ids"][:2]


def test_a_map_over_ten_items_six_cached_submits_an_array_of_four(cluster: Cluster) -> None:
    warm = jobfuncs.cached_square.map(range(6))
    assert warm.get_results(timeout=180) == [x * x for x in range(6)]
    mixed = jobfuncs.cached_square.map(range(10))
    assert mixed.cached == list(range(6))
    (array_id,) = mixed.array_ids
    assert mixed.get_results(timeout=180) == [x * x for x in range(10)]
    elements = [f"{array_id}_{i}" for i in range(4)]
    records = wait_for_records(*elements)
    assert sorted(records) == elements and all(r["State"] == "COMPLETED" for r in records.values())
    assert "#SBATCH --array=0-3" in Path(mixed.job_dir, "job.sh").read_text()
    answered = [job.cached.job_id if job.cached else None for job in mixed[:6]]
    assert answered == [f"{warm.id}_{i}" for i in range(6)]


def test_a_workflow_child_sees_the_result_its_submitter_cached(cluster: Cluster) -> None:
    first = jobfuncs.cached_square(12)
    assert first.get_result(timeout=180) == 144
    flow = jobfuncs.square_in_workflow(12)
    assert flow.get_result(timeout=300) == {"value": 144, "cached_from": first.id}
    tasks = Path(flow.job_dir, "tasks")
    assert not tasks.exists() or not list(tasks.iterdir())  # it submitted no child
    # cache=True on the workflow itself: its whole result is kept.
    cached_flow = jobfuncs.square_in_workflow.with_options(cache=True)
    ran = cached_flow(12)
    assert ran.cached is None and ran.get_result(timeout=300)["value"] == 144
    again = cached_flow(12)
    assert again.cached is not None and again.cached.job_id == ran.id
    assert again.get_result(timeout=0) == ran.get_result(timeout=0)


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))


def _cli(base: Path, *argv: str) -> str:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        main, [*argv, "--backend", "local", "--job-base-dir", str(base)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_line_lists_shows_and_clears_and_prune_keeps_cached_results(
    cluster: Cluster,
) -> None:
    base = Path(cluster.base_dir)
    cached = jobfuncs.cached_square(21)
    plain = jobfuncs.add(1, 2)
    assert cached.get_result(timeout=180) == 441 and plain.get_result(timeout=180) == 3
    listed = _cli(base, "cache", "list")
    (line,) = [row for row in listed.splitlines() if "cached_square" in row]
    key, _, job_id, state = line.split()[:4]
    assert (job_id, state) == (cached.id, "done") and "1 entries, 1 with a result" in listed
    shown = _cli(base, "cache", "show", key)
    assert f"job dir:   {cached.job_dir}" in shown and "function   jobfuncs.cached_square" in shown

    wait_for_records(cached.id, plain.id)  # ended: nothing writes into their directories now
    for directory in (cached.job_dir, plain.job_dir):
        _age(Path(directory), 30)
    pruned = _cli(base, "jobs", "prune", "--older-than", "7")
    assert f"removed job directory {plain.job_dir}" in pruned
    assert cached.job_dir not in pruned and Path(cached.job_dir).exists()
    assert jobfuncs.cached_square(21).cached is not None  # still a hit after the prune

    assert "removed 0 cache entries" in _cli(base, "cache", "clear", "--older-than", "1")
    cleared = _cli(base, "cache", "clear", key)
    assert f"removed {key} cached_square (job {cached.id})" in cleared
    assert "no cached results" in _cli(base, "cache", "list")
    again = jobfuncs.cached_square(21)
    assert again.cached is None and again.get_result(timeout=180) == 441


SSH_MODULE = """\
from slurm import WorkflowContext, task, workflow


@task(cache=True, time="00:05:00", mem="256M")
def cube(x):
    return x ** 3


@workflow(time="00:05:00", mem="256M")
def flow(x, ctx: WorkflowContext):
    job = cube(x)
    return {"value": job.get_result(), "cached_from": job.cached.job_id if job.cached else None}
"""

SSH_DRIVER = """\
import json, os, sys
from slurm import Cluster
from slurm.devcluster import SshInfo
import cubes

with Cluster(
    backend_type="ssh",
    hostname=os.environ["SLURM_SDK_TEST_SSH_ALIAS"],
    username=sys.argv[2],
    job_base_dir=sys.argv[1],
    default_partition="debug",
) as cluster:
    jobs = [cubes.cube(2), cubes.cube(3)]
    report = {
        "results": [job.get_result(timeout=300) for job in jobs],
        "ids": [job.id for job in jobs],
        "cached": [job.cached is not None for job in jobs],
    }
    if sys.argv[3] == "flow":
        report["flow"] = cubes.flow(2).get_result(timeout=300)
print("RESULT " + json.dumps(report))
"""


def test_over_ssh_a_rerun_and_a_workflow_child_are_answered_from_the_cache(
    devcluster_ssh: SshInfo, tmp_path: Path
) -> None:
    """Over SSH the job runs a built environment: its path is in the key, and the
    workflow's child (which runs that same interpreter on the node) makes the same key."""
    project = tmp_path / "ssh-project"
    project.mkdir()
    (project / "cubes.py").write_text(SSH_MODULE)
    (project / "driver.py").write_text(SSH_DRIVER)
    base = tmp_path / "jobs"

    def run(mode: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "driver.py", str(base), devcluster_ssh.username, mode],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert out.returncode == 0, out.stdout + out.stderr
        (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        report: dict[str, Any] = json.loads(line[len("RESULT ") :])
        return report

    first = run("plain")
    assert first["results"] == [8, 27] and first["cached"] == [False, False]
    second = run("flow")
    assert second["cached"] == [True, True] and second["ids"] == first["ids"]
    assert second["flow"] == {"value": 8, "cached_from": first["ids"][0]}
