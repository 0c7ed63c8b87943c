"""The interpreter the tests give ``python=``: one the compute nodes can start.

This very interpreter when the nodes can start it and import this checkout's
SDK from where it is (a checkout on a path every node shares); otherwise (a
clone under ``/tmp``, whose ``.venv`` and ``src`` are the login host's own)
the environment the SDK builds from it for the local backend, in a directory
under ``$HOME`` that every node sees, with the distributions the tests' own
modules import beside the SDK (a task defined in a test module runs that
module's imports on the node). Asked once per test session, through the SDK's
own preflight (which asks a node), always of the shared dev cluster (not of
the cluster ``$SLURM_CONF`` names at the time, which may be a release's), and
made sure of: the SDK takes a probe that could not run (no free node within
its wait, a cluster still starting) as no objection, which for a user is
right but would give the whole session an interpreter the nodes cannot start,
so the answer is run on a node, waiting for one, and asked again if it fails.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import slurm.devcluster as dc
from slurm import Cluster
from slurm._client.packaging import interpreter_for
from slurm._client.packaging.deps import requirements_for_modules

__all__ = ["node_python"]

#: What the tests' modules import at their top beside the standard library and the SDK.
TEST_IMPORTS = ("pytest", "anyio")


@functools.cache
def node_python(*more: str) -> str:
    """The path of a Python with this checkout's SDK that the dev cluster's nodes run;
    when it is a built environment, with the distributions of the top-level modules
    ``more`` too (``node_python("torch")``: what the SDK's own torch example imports)."""
    root = Path.home() / ".cache" / "slurm-sdk-tests"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = root / "node-python"
    extras = requirements_for_modules((*TEST_IMPORTS, *more))
    # The dependency collection is uv's, which reads its own settings, not pip's: the
    # directory of wheels that `make torch` found torch's CPU build in is offered to it.
    shared = dc.status()
    if not shared.running:
        raise RuntimeError(
            "node_python() asks the shared dev cluster's nodes, and it is not up: "
            "request the devcluster fixture before calling it"
        )
    links = os.environ.get("PIP_FIND_LINKS") or _pip_setting("global.find-links")
    saved = os.environ.get("UV_FIND_LINKS")
    if links and saved is None:
        os.environ["UV_FIND_LINKS"] = links.replace(" ", ",")
    saved_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = shared.slurm_conf
    try:
        for _ in range(3):
            with Cluster(
                backend_type="local", job_base_dir=str(base), default_partition="debug"
            ) as c:
                python = interpreter_for(c.session, extras=extras)
            if _starts_on_a_node(python, shared):
                return python
        raise RuntimeError(f"{python}, three times the SDK's answer, does not start on a node")
    finally:
        if links and saved is None:
            del os.environ["UV_FIND_LINKS"]
        if saved_conf is None:
            del os.environ["SLURM_CONF"]
        else:
            os.environ["SLURM_CONF"] = saved_conf


def _starts_on_a_node(python: str, shared: dc.Status) -> bool:
    """Whether ``python`` imports the SDK on one of the shared cluster's nodes (an srun
    that waits for a free node, unlike the preflight's probe)."""
    srun = os.path.join(shared.slurm_bin, "srun") if shared.slurm_bin else "srun"
    argv = [srun, "-N1", "-n1", "-p", "debug", "-t", "2", "--chdir=/", "-J", "node-python"]
    done = subprocess.run(
        [*argv, python, "-c", "import slurm"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    return done.returncode == 0


def _pip_setting(name: str) -> str:
    """pip's configured ``name`` (``pip config get``), or "" when it has none."""
    out = subprocess.run(
        ["python3", "-m", "pip", "config", "get", name],  # the system pip: a venv may lack one
        capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 else ""
