"""The client's start: what ``from slurm import Cluster`` loads before the first call (issue 27).

A short program's CPU is mostly its start: in ``make bench`` the SDK's client
CPU on W1, W2 and W3 is set against submitit's, whose import is ~70 ms here.
Building environments (wheels, dependency metadata, ``pyproject.toml``),
container images, argument parsers and the reasons of ``job.why()`` are
loaded where they are used; a cluster that runs jobs with an interpreter as it
is (the local backend, ``python=``, ``packaging="none"``) never pays for them.
Each module below was 1-9 ms of the start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Without pytest-cov's start of coverage in the subprocess (coverage reads its configuration
# with tomllib), and without what the interpreter had before the SDK's import.
_PROBE = """
import sys
from pathlib import Path
before = set(sys.modules)
from slurm import Cluster, task
import slurm._api.cluster
print("\\n".join(sorted(set(sys.modules) - before)))
"""

#: What only some programs need, with what loads it when they do.
LEFT_OUT = {
    "argparse": "Cluster.add_argparse_args (the caller's parser has it)",
    "importlib.metadata": "dependency metadata: a built environment (packaging.deps)",
    "email": "importlib.metadata's",
    "tomllib": "pyproject.toml: a built environment (packaging.project)",
    "tarfile": "shipping source not on the cluster yet (packaging.sources.pack)",
    "zipfile": "wheels (packaging.wheels)",
    "statistics": "nothing: a median is a sort (its fractions and decimal cost 4 ms)",
    "slurm._api.why": "job.why()",
    "slurm._slurm.reasons": "job.why()",
    "slurm._client.packaging.deps": "a built environment",
    "slurm._client.packaging.wheels": "a built environment",
    "slurm._client.packaging.remote": "a built environment",
    "slurm._client.packaging.pythons": "python_version=",
    "slurm._client.packaging.container": "a container image to build",
    "slurm._client.packaging.registry": "a container image to check",
    "slurm._client.packaging.pins": "a container image pinned by digest",
    "slurm.callbacks.callbacks": "a callback (the dispatcher builds contexts only for one)",
    "slurm._job.hookcontexts": "a callback (its contexts)",
}


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    done = subprocess.run(
        [sys.executable, "-P", "-c", _PROBE], capture_output=True, text=True, check=True, env=env
    )
    return set(done.stdout.split())


@pytest.mark.parametrize("module", sorted(LEFT_OUT))
def test_a_cluster_does_not_load_what_only_some_programs_need(
    loaded: set[str], module: str
) -> None:
    assert module not in loaded, (
        f"`from slurm import Cluster` now imports {module}, which only {LEFT_OUT[module]} "
        "needs: import it where it is used"
    )


_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import slurm._client.packaging as packaging
from fakeslurm import FakeSlurm
from slurm import Cluster, task

packaging.interpreter_for = lambda cluster, *settings: sys.executable


@task(time="00:01:00")
def add(a, b):
    return a + b


fake = FakeSlurm()
with Cluster(transport=fake, job_base_dir=sys.argv[2], python=sys.executable) as cluster:
    job = add(1, 2)
    fake.run_all()
    assert job.get_result() == 3
print("\\n".join(sorted(sys.modules)))
"""


def test_a_call_without_callbacks_loads_none_of_their_classes(tmp_path: Path) -> None:
    """The dispatcher hears every event of a call; with no callback to tell, it builds no
    context and imports none of their classes (dataclasses: 3 ms of a short program)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    env["SLURM_CONF"] = "/nonexistent/slurm.conf"  # the machine's is not the fake's
    done = subprocess.run(
        [sys.executable, "-P", "-c", _RUN, str(Path(__file__).parent), str(tmp_path / "jobs")],
        capture_output=True, text=True, check=False, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    for module in ("slurm.callbacks.callbacks", "slurm._job.hookcontexts"):
        assert module not in loaded, f"a call without callbacks imported {module}"
