"""The environment variables the batch script sets for the job side: their names.

The client writes them into the script (:mod:`slurm._client.submission`,
:mod:`slurm._client.packaging.launch`); the runner reads them
(:mod:`slurm._job`). Both take the names from here.
"""

from __future__ import annotations

__all__ = [
    "CODE_DIR_VARIABLE",
    "CONTAINER_VARIABLE",
    "DONE_DIR_VARIABLE",
    "PACK_CALLS_VARIABLE",
    "RUNNER_ENTRY",
    "WARN_AT_VARIABLE",
]

#: Where to drop the done marker the client's tracker lists.
DONE_DIR_VARIABLE = "SLURM_SDK_DONE_DIR"
#: Set when local source was shipped (see :mod:`slurm._client.packaging.launch`).
CODE_DIR_VARIABLE = "SLURM_SDK_CODE_DIR"
#: The container a task runs in, as JSON (:class:`slurm._slurm.container.ContainerSpec`).
CONTAINER_VARIABLE = "SLURM_SDK_CONTAINER"
#: The calls of a packed element to run (comma-separated indices), when the client
#: runs some again on their own (a retry, a resubmission): the others are not its to run.
PACK_CALLS_VARIABLE = "SLURM_SDK_PACK_CALLS"
#: When Slurm's time-limit warning is due (seconds since the epoch, from the batch
#: script's start and the job's time limit): the runner warns itself then if Slurm's
#: one-shot USR1 never reached it (sent while the script still ignored it).
WARN_AT_VARIABLE = "SLURM_SDK_WARN_AT"

#: How a batch script starts the runner, after the interpreter and its ``-P``: the same
#: as ``-m slurm.runner`` (which still works, for scripts queued by earlier versions),
#: without the ``runpy`` that ``-m`` imports first (with ``importlib.util`` and
#: ``contextlib``: 1.5 ms of every job's start, docs/many-calls.md).
RUNNER_ENTRY = ("-c", "from slurm.runner import main; raise SystemExit(main())")
