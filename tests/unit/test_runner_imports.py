"""The job's start: what the runner imports before the user's code runs (issue 27).

A job's CPU before the call is the interpreter's start plus these imports. This
pins them: the SDK's own modules exactly, the standard library's within a set
(adding a module to either is a decision to make here, with ``make bench``'s
figure of the start beside it), and nothing outside the standard library at
all (cloudpickle, rich, paramiko...: a payload that needs cloudpickle imports
it itself). The user's module is ``from slurm import task`` and one task, as
the node imports it to unpickle a call by reference.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The SDK's modules a task's job imports before its call: the runner's path, and what
#: ``from slurm import task`` brings (the package, the decorators, the earlier shims).
RUNNER_MODULES = {
    "slurm",
    "slurm._api",
    "slurm._api.decorators",
    "slurm._api.task",
    "slurm._api.workflow",
    "slurm._job",
    "slurm._job.call",
    "slurm._job.context",
    "slurm._job.entry",
    "slurm._job.hooks",
    "slurm._job.inject",
    "slurm._job.outputs",
    "slurm._job.progress",  # the no-progress stop of time-limit requeues (issue 25)
    "slurm._job.runcall",
    "slurm._job.signals",
    "slurm._slurm",
    "slurm._slurm.options",
    "slurm._wire",
    "slurm._wire.callbacks",
    "slurm._wire.env",
    "slurm._wire.layout",
    "slurm._wire.payload",
    "slurm._wire.runlog",
    "slurm.errors",
    "slurm.runner",
    "slurm.task",
    "slurm.workflow",
}

#: The standard library's top-level modules it may import (Python 3.11 names; later
#: releases import fewer of them). typing, dataclasses (with inspect, ast, dis,
#: tokenize) and pathlib (with urllib and ipaddress) are the largest: what stands
#: between this start and the floor (docs/many-calls.md).
STDLIB_ALLOWED = {
    "__future__", "_ast", "_collections", "_compat_pickle", "_contextvars", "_functools",
    "_json", "_opcode", "_operator", "_pickle", "_sre", "_struct", "_typing", "_weakrefset",
    "ast", "collections", "contextlib", "contextvars", "copy", "copyreg", "dataclasses", "dis",
    "enum", "errno", "fnmatch", "functools", "importlib", "inspect", "ipaddress", "itertools",
    "json", "keyword", "linecache", "math", "ntpath", "opcode", "operator", "pathlib", "pickle",
    "re", "reprlib", "signal", "struct", "threading", "token", "tokenize", "types", "typing",
    "urllib", "warnings", "weakref",
}  # fmt: skip

_PROBE = """
import sys
before = set(sys.modules)
sys.path.insert(0, sys.argv[1])
import slurm.runner
import user_tasks
print("\\n".join(sorted(set(sys.modules) - before - {"user_tasks"})))
"""


def _imported(tmp_path: Path) -> set[str]:
    (tmp_path / "user_tasks.py").write_text(
        "from slurm import task\n\n\n@task(time=1)\ndef double(x):\n    return 2 * x\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", _PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_the_runner_imports_only_what_it_pins(tmp_path: Path) -> None:
    imported = _imported(tmp_path)
    ours = {m for m in imported if m == "slurm" or m.startswith("slurm.")}
    assert ours == RUNNER_MODULES, (
        f"the job's start now imports {sorted(ours - RUNNER_MODULES)} and no longer "
        f"{sorted(RUNNER_MODULES - ours)}: import what only some jobs need where they need "
        "it (see slurm._job.entry.main), or pin it here with make bench's figure"
    )
    others = {m.split(".")[0] for m in imported - ours}
    foreign = sorted(m for m in others if m not in sys.stdlib_module_names)
    assert not foreign, f"the job's start imports modules outside the standard library: {foreign}"
    if sys.version_info[:2] == (3, 11):
        assert others <= STDLIB_ALLOWED, f"new standard modules: {sorted(others - STDLIB_ALLOWED)}"


def test_what_only_some_jobs_need_is_not_imported(tmp_path: Path) -> None:
    imported = _imported(tmp_path)
    for module in (
        "slurm._job.pack",  # a packed element
        "slurm._job.ranks",  # a job of several ranks
        "slurm._job.container",  # a call in a container
        "slurm._api.cluster",  # a workflow's cluster
        "slurm._client",
        "cloudpickle",  # a payload of code by value imports it itself
        "subprocess",
        "logging",
        "datetime",
    ):
        assert module not in imported, module
