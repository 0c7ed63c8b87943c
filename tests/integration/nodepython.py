"""The interpreter the tests give ``python=``: one the compute nodes can start.

This very interpreter when the nodes can start it and import this checkout's
SDK from where it is (a checkout on a path every node shares); otherwise (a
clone under ``/tmp``, whose ``.venv`` and ``src`` are the login host's own)
the environment the SDK builds from it for the local backend, in a directory
under ``$HOME`` that every node sees, with the distributions the tests' own
modules import beside the SDK (a task defined in a test module runs that
module's imports on the node). Asked once per test session, through the SDK's
own preflight (which asks a node).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

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
    links = os.environ.get("PIP_FIND_LINKS") or _pip_setting("global.find-links")
    saved = os.environ.get("UV_FIND_LINKS")
    if links and saved is None:
        os.environ["UV_FIND_LINKS"] = links.replace(" ", ",")
    try:
        with Cluster(backend_type="local", job_base_dir=str(base), default_partition="debug") as c:
            return interpreter_for(c.session, extras=extras)
    finally:
        if links and saved is None:
            del os.environ["UV_FIND_LINKS"]


def _pip_setting(name: str) -> str:
    """pip's configured ``name`` (``pip config get``), or "" when it has none."""
    out = subprocess.run(
        ["python3", "-m", "pip", "config", "get", name],  # the system pip: a venv may lack one
        capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 else ""
