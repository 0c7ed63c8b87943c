"""Running a task inside a container image through pyxis (``srun --container-image``).

The options ``container_image`` (a registry reference such as
``127.0.0.1:6821#sdk/python:3`` or a ``.sqsh`` file on the cluster),
``container_mounts`` (``SRC:DST[:FLAGS]``, a string with commas or a list) and
``container_workdir`` are set like any other option: per task, per ``with_options``
call or as a cluster default. The batch step still starts the SDK's runner with the
cluster's Python; seeing :data:`CONTAINER_VARIABLE`, that runner hands over to
``srun --container-image=...``, which runs the runner again inside the image with
the image's ``python3``. The job's directories and the SDK's code (the cluster
interpreter's non-standard-library paths, and the submitting process's paths on the
local backend) are mounted at the same paths and put on ``PYTHONPATH``.

Pure: the spec travels as JSON in the batch script; :func:`srun_prefix` builds argv.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from slurm._wire.env import CONTAINER_VARIABLE
from slurm.errors import InvalidOptionError

__all__ = [
    "CONTAINER_OPTIONS",
    "ContainerSpec",
    "code_paths",
    "container_spec",
    "srun_prefix",
]

#: The SDK options that put a task in a container.
CONTAINER_OPTIONS = frozenset(
    {"container_image", "container_mounts", "container_workdir", "srun_args"}
)
#: The PATH the runner in the image gets (srun itself is found on it too).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ContainerSpec:
    """What the batch step needs to start the runner inside the image."""

    image: str
    mounts: tuple[str, ...] = ()  # the user's, SRC:DST[:FLAGS]
    workdir: str | None = None
    python: str = "python3"  # the image's interpreter
    shared: tuple[str, ...] = ()  # directories the job reads and writes (job base dir, ...)
    srun_args: tuple[str, ...] = ()  # the user's own srun flags (the earlier SDK's srun_args)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        data = json.loads(text)
        return cls(
            image=data["image"],
            mounts=tuple(data.get("mounts") or ()),
            workdir=data.get("workdir"),
            python=data.get("python") or "python3",
            shared=tuple(data.get("shared") or ()),
            srun_args=tuple(data.get("srun_args") or ()),
        )


def _mount_list(value: Any) -> tuple[str, ...]:
    if value is None or value is False:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    mounts = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidOptionError(
                f"container_mounts must be 'SRC:DST[:FLAGS]' strings (comma-separated, or a "
                f"list), got {value!r}."
            )
        if any(c in item for c in ("\n", "\x00")) or (":" not in item and not item.startswith("/")):
            raise InvalidOptionError(
                f"container_mounts entry {item!r} is not 'SRC:DST[:FLAGS]' or an absolute path."
            )
        mounts.append(item.strip())
    return tuple(mounts)


def container_spec(sdk_options: Mapping[str, Any], shared: Sequence[str]) -> ContainerSpec | None:
    """The container a task runs in, from its SDK options; None when it runs on the node.

    Raises:
        InvalidOptionError: ``container_mounts`` or ``container_workdir`` without an
            image, or a malformed value.
    """
    image = sdk_options.get("container_image")
    if image is False:  # switched off (e.g. a workflow's task opting out of its image)
        return None
    if not image:
        stray = sorted(k for k in CONTAINER_OPTIONS - {"container_image"} if sdk_options.get(k))
        if stray:
            raise InvalidOptionError(
                f"{', '.join(stray)} given without container_image: set container_image= "
                "(a registry reference or a .sqsh file on the cluster), or drop them."
            )
        return None
    if not isinstance(image, str) or any(c in image for c in " \n\x00,"):
        raise InvalidOptionError(
            f"container_image must be one registry reference or path, got {image!r}."
        )
    workdir = sdk_options.get("container_workdir")
    if workdir is not None and (not isinstance(workdir, str) or not workdir.startswith("/")):
        raise InvalidOptionError(f"container_workdir must be an absolute path, got {workdir!r}.")
    return ContainerSpec(
        image=image,
        mounts=_mount_list(sdk_options.get("container_mounts")),
        workdir=workdir,
        shared=tuple(dict.fromkeys(shared)),
        srun_args=_srun_args(sdk_options.get("srun_args")),
    )


#: The srun flags the SDK sets for pyxis itself (``srun_args`` may not set them).
_OWN_FLAGS = ("--container-", "--no-container-")


def _srun_args(value: Any) -> tuple[str, ...]:
    """``srun_args`` (a list of flags, or one string split as a shell would) checked."""
    if value is None or value is False:
        return ()
    items = shlex.split(value) if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item.startswith("-") or "\n" in item:
            raise InvalidOptionError(
                f"srun_args must be srun flags such as ['--label', '--cpu-bind=cores'], got "
                f"{value!r} ({item!r} is not a flag)."
            )
        if item.startswith(_OWN_FLAGS):
            raise InvalidOptionError(
                f"srun_args {item!r}: the SDK sets pyxis's --container-* flags itself; give "
                "container_image=, container_mounts= or container_workdir= instead."
            )
    return tuple(items)


def code_paths(extra: Sequence[str] = ()) -> list[str]:
    """Where this interpreter finds the SDK and the user's code, without its standard
    library (the image brings its own): ``sys.path`` entries outside ``sys.base_prefix``
    or named ``site-packages``, then ``extra``; only existing directories, in order.

    The working directory ``python -m`` put first is left out (the batch step's, often
    the home directory, whose shell profile the container's login shell would read)."""
    bases = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    cwd = os.getcwd()
    found: list[str] = []
    for entry in [*(p for p in sys.path if p != cwd), *extra]:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        in_stdlib = any(real == b or real.startswith(b + os.sep) for b in bases)
        if in_stdlib and "site-packages" not in real:
            continue
        if entry not in found:
            found.append(entry)
    return found


def _outermost(paths: Sequence[str]) -> list[str]:
    """``paths`` without those inside another one (one mount covers them)."""
    real = sorted({os.path.normpath(p) for p in paths})
    kept: list[str] = []
    for path in real:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def srun_prefix(
    spec: ContainerSpec, code: Sequence[str], job_dir: str
) -> tuple[list[str], dict[str, str]]:
    """(``srun`` flags for pyxis, then the image's python; environment to add).

    The job's shared directories and ``code`` are mounted at their own paths; ``code``
    is also the container's ``PYTHONPATH``; the working directory is ``container_workdir``,
    else the job directory.
    """
    own = [f"{p}:{p}" for p in _outermost([*spec.shared, *code])]
    flags = [*spec.srun_args, f"--container-image={spec.image}"]
    flags.append("--container-mounts=" + ",".join([*own, *spec.mounts]))
    flags.append(f"--container-workdir={spec.workdir or job_dir}")
    # Not the home directory (pyxis's default): its shell profile may put the cluster's
    # own Python first on PATH. Mount it with container_mounts when a task needs it.
    flags.append("--no-container-mount-home")
    # The job's PATH leads to the cluster's interpreter (a venv's bin, which pyxis's home
    # mount may even make reachable): in the image, `python3` must be the image's.
    # PYTHONSAFEPATH: -P for the runner in the image (an image's Python older than 3.11
    # would refuse the flag, and ignores the variable); the runner drops it at once.
    env = {
        "PYTHONPATH": ":".join(code),
        "PATH": IMAGE_PATH,
        CONTAINER_VARIABLE: "",
        "PYTHONSAFEPATH": "1",
    }
    return [*flags, spec.python], env
