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

import pytest

# Without pytest-cov's start of coverage in the subprocess (coverage reads its configuration
# with tomllib), and without what the interpreter had before the SDK's import.
_PROBE = """
import sys
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
