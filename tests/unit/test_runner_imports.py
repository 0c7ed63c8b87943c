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

import os
import subprocess
import sys
from pathlib import Path

from slurm._wire.env import RUNNER_ENTRY

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
    "slurm._types",  # TYPE_CHECKING and overload without typing
    "slurm._wire",
    "slurm._wire.env",
    "slurm._wire.jsontext",  # json's C half: the outcome and usage records
    "slurm._wire.layout",
    "slurm._wire.payload",
    "slurm._wire.record",  # the start path's dataclasses, without dataclasses
    "slurm._wire.runlog",
    "slurm.errors",
    "slurm.runner",
    "slurm.task",
    "slurm.workflow",
}

#: The standard library's top-level modules it may import (Python 3.11 names): the C
#: halves of pickle and json, contextvars, math, and what functools and collections bring.
#: Not typing, dataclasses (with inspect, ast, dis, tokenize), pathlib (with urllib and
#: ipaddress) nor contextlib: together they were more than half of a job's start
#: (docs/many-calls.md); nor pickle's and json's Python halves (with re), signal (with
#: enum) and threading, another 10 ms of it. test_what_only_some_jobs_need_is_not_imported
#: names them.
STDLIB_ALLOWED = {
    "__future__", "_collections", "_compat_pickle", "_contextvars", "_functools", "_json",
    "_operator", "_pickle", "collections", "contextvars", "copyreg", "functools",
    "itertools", "keyword", "math", "operator", "reprlib", "types",
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
        "slurm._job.hookcontexts",  # the callbacks' contexts (dataclasses): a job with callbacks
        "slurm._wire.callbacks",  # their file
        "slurm._job.locus",  # where their hooks run (an enum)
        "cloudpickle",  # a payload of code by value imports it itself
        "subprocess",
        "logging",
        "datetime",
        # What a job's start no longer pays for (issue 27): slurm._types, slurm._wire.record
        # and plain paths stand in for them; a client's need imports them where it is.
        "typing",
        "dataclasses",
        "inspect",
        "pathlib",
        "contextlib",
        "importlib",
        # pickle and json through their C halves (slurm._wire.payload, slurm._wire.jsontext),
        # signals through _signal, helper threads through _thread (slurm._job.signals).
        "pickle",
        "json",
        "re",
        "signal",
        "enum",
        "threading",
    ):
        assert module not in imported, module


def test_a_call_run_to_its_result_needs_none_of_them(tmp_path: Path) -> None:
    """Not only the imports: running a plain call (its parameters read for contexts, its
    result and figures written) loads none of the modules the start path left out."""
    from slurm._wire.payload import Call, Envelope, Payload, dumps_payload

    (tmp_path / "user_tasks.py").write_text(
        "from slurm import task\n\n\n@task(time=1)\ndef double(x: int, *, by: int = 2) -> int:\n"
        "    return by * x\n"
    )
    job = tmp_path / "job"
    job.mkdir()
    sys.path.insert(0, str(tmp_path))
    try:
        import user_tasks  # type: ignore[import-not-found]

        data, _ = dumps_payload(Payload(task=user_tasks.double, call=Call((21,), {})))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("user_tasks", None)
    (job / "payload.pkl").write_bytes(data)
    (job / "sys_path.txt").write_text(f"{tmp_path}\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(  # as the batch script starts it (submission's RUNNER_ENTRY)
        [sys.executable, "-P", "-X", "importtime", *RUNNER_ENTRY, str(job)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert Envelope.from_bytes((job / "result.pkl").read_bytes()).unwrap() == 42
    loaded = {
        line.split("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    }
    for module in (
        *("typing", "dataclasses", "inspect", "pathlib", "subprocess", "logging"),
        *("pickle", "json", "re", "signal", "enum", "threading"),
        # What `-m` brings (runpy) and the user's module found with importlib would bring;
        # a codec besides UTF-8 (reading /proc as ascii).
        *("runpy", "importlib", "importlib.util", "contextlib", "warnings", "encodings.ascii"),
    ):
        assert module not in loaded, f"running the call imported {module}"
