"""Running a task inside a container image: through pyxis (``srun --container-image``)
or Apptainer (``apptainer exec IMAGE.sif``).

The options ``container_runtime`` (``"pyxis"``, ``"apptainer"`` or ``"auto"``, the
default: pyxis when the cluster's srun has it, else Apptainer; resolved before
submission), ``container_image`` (for pyxis a registry reference such as
``127.0.0.1:6821#sdk/python:3`` or a ``.sqsh`` file on the cluster, for Apptainer a
``.sif`` file there, or a ``docker://``/``oras://`` reference that the client pins by
digest and pulls into a ``.sif`` cache before submission, see
:mod:`slurm._client.packaging.sif`),
``container_mounts`` (``SRC:DST[:FLAGS]``, a string with commas or a list) and
``container_workdir`` are set like any other option: per task, per ``with_options``
call or as a cluster default. The batch step still starts the SDK's runner with the
cluster's Python; seeing :data:`CONTAINER_VARIABLE`, that runner hands over to
``srun --container-image=...`` (pyxis) or ``apptainer exec --cleanenv ...``, which runs
the runner again inside the image with the image's ``python3``. The job's directories
and the SDK's code (the cluster interpreter's non-standard-library paths, and the
submitting process's paths on the local backend) are mounted at the same paths and put
on ``PYTHONPATH``.

Pure: the spec travels as JSON in the batch script; :func:`launch_prefix` builds argv
(:func:`srun_prefix` for pyxis, :func:`apptainer_prefix` for Apptainer). Under pyxis
the container is named (:func:`container_name`: the job's id and the image's hash), so
``slurm jobs connect`` can attach another step to it (``--container-name=NAME:exec``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from slurm._wire.env import CONTAINER_VARIABLE
from slurm.errors import InvalidOptionError

__all__ = [
    "CONTAINER_OPTIONS",
    "RUNTIMES",
    "ContainerSpec",
    "apptainer_env",
    "apptainer_prefix",
    "asks_for_gpus",
    "code_paths",
    "container_name",
    "container_spec",
    "is_sif",
    "launch_prefix",
    "script_container",
    "srun_prefix",
]

#: The SDK options that put a task in a container.
CONTAINER_OPTIONS = frozenset(
    {
        "container_image",
        "container_mounts",
        "container_workdir",
        "container_runtime",
        "container_gpu_vendor",
        "srun_args",
    }
)
#: ``container_gpu_vendor=``: Apptainer's flag for each (pyxis's enroot hooks need none).
GPU_FLAGS = {"nvidia": "--nv", "amd": "--rocm"}
#: The runtimes a task runs in (``container_runtime=``, besides ``"auto"``), in the
#: order ``"auto"`` tries them.
RUNTIMES = ("pyxis", "apptainer")
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
    runtime: str = "auto"  # "pyxis" or "apptainer" once resolved before submission
    gpus: bool = False  # the task asks for GPUs (apptainer: --nv, or --rocm for "amd")
    gpu_vendor: str = "nvidia"  # whose GPUs (container_gpu_vendor=): picks the flag
    srun_args: tuple[str, ...] = ()  # the user's own srun flags (the earlier SDK's srun_args)
    source: str | None = None  # what ``image`` was made from, pinned (a registry digest)

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
            runtime=data.get("runtime") or "pyxis",
            gpus=bool(data.get("gpus")),
            gpu_vendor=data.get("gpu_vendor") or "nvidia",
            srun_args=tuple(data.get("srun_args") or ()),
            source=data.get("source"),
        )

    @property
    def ran(self) -> str:
        """What the task runs in, as a job records it: the pinned source, else the image."""
        return self.source or self.image


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


def _runtime(value: Any) -> str:
    runtime = "auto" if value is None else value
    if runtime not in ("auto", *RUNTIMES):
        raise InvalidOptionError(
            f"container_runtime must be 'auto', {', '.join(repr(r) for r in RUNTIMES)}, got "
            f"{value!r}: 'pyxis' runs images with srun --container-image, 'apptainer' runs "
            "a .sif file with apptainer exec, 'auto' takes the one the cluster has."
        )
    return str(runtime)


#: The sbatch options that ask for GPUs.
_GPU_OPTIONS = ("gpus", "gpus_per_node", "gpus_per_socket", "gpus_per_task")


def asks_for_gpus(sbatch_options: Mapping[str, Any]) -> bool:
    """True when the sbatch options ask for GPUs: a ``gpus*`` count other than 0, or a
    ``gres`` naming ``gpu``."""
    for key in _GPU_OPTIONS:
        value = sbatch_options.get(key)
        if value not in (None, False, 0, "0", ""):
            return True
    gres = sbatch_options.get("gres")
    items = gres.split(",") if isinstance(gres, str) else list(gres or ())
    return any(str(item).strip().startswith("gpu") for item in items)


def container_spec(
    sdk_options: Mapping[str, Any], shared: Sequence[str], *, gpus: bool = False
) -> ContainerSpec | None:
    """The container a task runs in, from its SDK options; None when it runs on the node.
    ``gpus``: the task's sbatch options ask for GPUs.

    Raises:
        InvalidOptionError: ``container_mounts``, ``container_workdir`` or
            ``container_runtime`` without an image, or a malformed value.
    """
    runtime = _runtime(sdk_options.get("container_runtime"))
    image = sdk_options.get("container_image")
    if image is False:  # switched off (e.g. a workflow's task opting out of its image)
        return None
    if not image:
        # container_runtime alone is fine (a cluster's default for the tasks with images)
        unused = CONTAINER_OPTIONS - {
            "container_image",
            "container_runtime",
            "container_gpu_vendor",
        }
        stray = sorted(k for k in unused if sdk_options.get(k))
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
    vendor = sdk_options.get("container_gpu_vendor") or "nvidia"
    if vendor not in GPU_FLAGS:
        raise InvalidOptionError(
            f"container_gpu_vendor must be {' or '.join(repr(v) for v in GPU_FLAGS)} (Apptainer's "
            f"{' or '.join(GPU_FLAGS.values())}), got {vendor!r}."
        )
    return ContainerSpec(
        image=image,
        mounts=_mount_list(sdk_options.get("container_mounts")),
        workdir=workdir,
        shared=tuple(dict.fromkeys(shared)),
        runtime=runtime,
        gpus=gpus,
        gpu_vendor=vendor,
        srun_args=_srun_args(sdk_options.get("srun_args")),
    )


#: Where a SIF file says what it is: after its 32-byte launch line.
SIF_MAGIC = b"SIF_MAGIC"


def is_sif(head: bytes) -> bool:
    """True when ``head`` (a file's first 64 bytes or more) is the start of a SIF image."""
    return head[32 : 32 + len(SIF_MAGIC)] == SIF_MAGIC


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


def container_name(job_id: str, image: str) -> str:
    """The pyxis name of the container job ``job_id`` (Slurm's own id, ``SLURM_JOB_ID``)
    runs ``image`` in: ``slurm jobs connect`` attaches to it by that name. The image's
    hash is part of it, so two calls of one job in two images never share a container.

    Example::

        >>> container_name("1234", "/images/py.sqsh")
        'slurm-sdk-1234-d56bc25cba'
    """
    digest = hashlib.sha256(image.encode()).hexdigest()[:10]
    return f"slurm-sdk-{re.sub(r'[^0-9A-Za-z_]', '_', job_id)}-{digest}"


def script_container(script: str) -> ContainerSpec | None:
    """The container a batch script runs its task in (its ``export`` of
    :data:`CONTAINER_VARIABLE`), or None."""
    prefix = f"export {CONTAINER_VARIABLE}="
    for line in script.splitlines():
        if line.startswith(prefix):
            try:
                words = shlex.split(line)
                return ContainerSpec.from_json(words[1].partition("=")[2])
            except (ValueError, KeyError, IndexError, TypeError):
                return None
    return None


def srun_prefix(
    spec: ContainerSpec, code: Sequence[str], job_dir: str, name: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """(``srun`` flags for pyxis, then the image's python; environment to add).

    The job's shared directories and ``code`` are mounted at their own paths; ``code``
    is also the container's ``PYTHONPATH``; the working directory is ``container_workdir``,
    else the job directory. ``name`` (:func:`container_name`) names the container, so
    that another step of the job can attach to it.
    """
    own = [f"{p}:{p}" for p in _outermost([*spec.shared, *code])]
    flags = [*spec.srun_args, f"--container-image={spec.image}"]
    if name:
        flags.append(f"--container-name={name}")
    flags.append("--container-mounts=" + ",".join([*own, *spec.mounts]))
    flags.append(f"--container-workdir={spec.workdir or job_dir}")
    # Not the home directory (pyxis's default): its shell profile may put the cluster's
    # own Python first on PATH. Mount it with container_mounts when a task needs it.
    flags.append("--no-container-mount-home")
    # The job's PATH leads to the cluster's interpreter (a venv's bin, which pyxis's home
    # mount may even make reachable): in the image, `python3` must be the image's.
    # PYTHONSAFEPATH: -P for the runner in the image (an image's Python older than 3.11
    # would refuse the flag, and ignores the variable); the runner drops it at once.
    return [*flags, spec.python], _image_env(code)


def _image_env(code: Sequence[str]) -> dict[str, str]:
    """What the runner in the image needs on top of the job's environment: ``code`` as
    its ``PYTHONPATH``, the image's ``PATH``, the container marker, ``-P``."""
    # PYTHONSAFEPATH: -P for the runner in the image (an image's Python older than 3.11
    # would refuse the flag, and ignores the variable); the runner drops it at once.
    return {
        "PYTHONPATH": ":".join(code),
        "PATH": IMAGE_PATH,
        CONTAINER_VARIABLE: "",
        "PYTHONSAFEPATH": "1",
    }


#: Variables of the batch step (or rank) passed into an Apptainer container besides
#: Slurm's own (``SLURM_*``, the SDK's ``SLURM_SDK_*`` among them): the GPUs Slurm gave
#: the job, and the ranks' meeting point.
_PASSED = (
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    # where the ranks of a multi-rank task meet (set by the rank launcher)
    "MASTER_ADDR",
    "MASTER_PORT",
)


def apptainer_env(environ: Mapping[str, str], code: Sequence[str]) -> dict[str, str]:
    """Exactly what the runner in an Apptainer container gets (``--cleanenv`` clears the
    rest): Slurm's and the SDK's ``SLURM_*`` variables of the batch step, the GPUs it was
    given, and :func:`_image_env`'s (the container marker, ``PYTHONPATH``, ``PATH``)."""
    passed = {
        k: v
        for k, v in environ.items()
        if (k.startswith("SLURM_") or k in _PASSED) and k != CONTAINER_VARIABLE
    }
    return dict(sorted({**passed, **_image_env(code)}.items()))


def apptainer_prefix(
    spec: ContainerSpec, code: Sequence[str], job_dir: str, environ: Mapping[str, str]
) -> list[str]:
    """``apptainer exec ... IMAGE PYTHON``: the job's shared directories and ``code``
    bound at their own paths, then the user's ``container_mounts``; the working
    directory ``container_workdir``, else the job directory; no home directory (as with
    pyxis); ``--nv`` when the task asks for GPUs (``--rocm`` for
    ``container_gpu_vendor="amd"``); ``--cleanenv`` with
    :func:`apptainer_env`'s variables passed one by one."""
    argv = ["apptainer", "exec", "--cleanenv", "--no-home"]
    for path in _outermost([*spec.shared, *code]):
        argv += ["--bind", f"{path}:{path}"]
    for mount in spec.mounts:
        argv += ["--bind", mount]
    argv += ["--pwd", spec.workdir or job_dir]
    if spec.gpus:
        argv.append(GPU_FLAGS[spec.gpu_vendor])
    for key, value in apptainer_env(environ, code).items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, spec.image, spec.python]


def launch_prefix(
    spec: ContainerSpec, code: Sequence[str], job_dir: str, environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """(The argv that runs the image's python, to which ``-m slurm.runner ...`` is added;
    the environment it runs in). For pyxis ``srun`` with its flags, in the job's
    environment and :func:`srun_prefix`'s; for Apptainer :func:`apptainer_prefix`, run
    by the batch step itself (one rank) in the job's environment."""
    if spec.runtime == "apptainer":
        return apptainer_prefix(spec, code, job_dir, environ), dict(environ)
    job_id = environ.get("SLURM_JOB_ID")
    name = container_name(job_id, spec.image) if job_id else None
    flags, env_add = srun_prefix(spec, code, job_dir, name)
    return ["srun", *flags], {**environ, **env_add}
