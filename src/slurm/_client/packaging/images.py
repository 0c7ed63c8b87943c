"""Which container image a submission runs in, and building it once per run.

:func:`prepare` is what submission calls first. When the task's packaging (its own
``packaging=`` option, else the cluster's) is ``"container"``, the image is built
from its Dockerfile and pushed (:func:`slurm._client.packaging.container.build_and_push`)
once per cluster and set as the task's ``container_image``; an explicit
``container_image`` wins and nothing is built.

A workflow runs on the cluster's Python, outside any image: its job submits its
tasks with ``sbatch``, which an image does not have. Its container settings (a
built image, or ``container_image``/``container_mounts``/``container_workdir``)
become the defaults of the tasks it submits, and the references built so far
travel in its :class:`~slurm._wire.payload.WorkflowSpec`: a workflow's cluster on the
compute node never builds, it looks the image up there.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from slurm._slurm.container import CONTAINER_OPTIONS, ContainerSpec, container_spec, is_sif
from slurm._slurm.packaging import BUILD_KEYS
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._client.packaging.container import ImageBuild
    from slurm._client.packaging.registry import ImageReference
    from slurm._client.session import Session
    from slurm._client.tasks import SubmittedTask

# Builds, registries and pins are imported where a task asks for a container: a submission
# without one never loads them.

__all__ = [
    "FLAT_OPTIONS",
    "build_for",
    "check_container",
    "check_image",
    "check_pyxis",
    "earlier_spellings",
    "known_images",
    "prepare",
    "prepare_for_node",
    "resolve_runtime",
    "seed_images",
]

logger = logging.getLogger(__name__)

#: The options ``packaging_<key>`` (the earlier SDK's spellings of the build keys).
FLAT_OPTIONS = tuple(f"packaging_{key}" for key in BUILD_KEYS)


# One build at a time in this process (two clusters with the same Dockerfile build once).
_build_lock = threading.Lock()


def seed_images(session: Session, images: Mapping[str, str]) -> None:
    """A workflow's cluster on its node: these references, built by the submitter, and
    no builds of its own."""
    state = session.images
    state.built.update(images)
    state.checked.update(images.values())
    state.builds_here = False


def known_images(session: Session) -> dict[str, str]:
    """The references built (or handed down) for ``cluster`` so far, by build key."""
    state = session.images
    with state.lock:
        return dict(state.built)


def build_for(session: Session, sdk_options: Mapping[str, Any]) -> ImageBuild | None:
    """The image to build for a submission with these SDK options, or None.

    The keys come from ``packaging={"type": "container", ...}`` (the task's, else the
    cluster's), then the options ``packaging_<key>``, which win.

    Raises:
        ConfigurationError: the build keys are incomplete or wrong.
    """
    from slurm._slurm.packaging import parse_spec

    chosen = sdk_options.get("packaging")
    spec = parse_spec(chosen if chosen is not None else session.packaging)
    if spec.container is None:
        return None
    values = dict(spec.container)
    for key, option in zip(BUILD_KEYS, FLAT_OPTIONS, strict=True):
        if sdk_options.get(option) is not None:
            values[key] = sdk_options[option]
    from slurm._client.packaging.container import image_build

    return image_build(values)


def _answer_on_client(reference: str) -> dict[str, Any]:
    from slurm._client.packaging.registry import manifest_answer, parse_reference
    from slurm._transport.local import LocalTransport

    ref = parse_reference(reference.replace("/", "#", 1))
    if ref is None:
        return {}
    return manifest_answer(LocalTransport(), sys.executable, ref)


def _exists_on_client(reference: str) -> bool:
    return _answer_on_client(reference).get("status") == 200


def _digest_on_client(reference: str) -> str | None:
    answer = _answer_on_client(reference)
    return answer.get("digest") if answer.get("status") == 200 else None


def _reference(
    session: Session, build: ImageBuild, task: SubmittedTask, runtime: Any = None
) -> str:
    state = session.images
    with state.lock:
        found = state.built.get(build.key)
        if found is not None:
            return found
        if not state.builds_here:
            raise ConfigurationError(
                f"{task.name}() asks for an image built from a Dockerfile (packaging="
                "'container'), but it is submitted from a running workflow, where nothing is "
                "built, and the workflow was not given that image. Nothing was submitted. Set "
                "the same packaging on the workflow or its cluster (its image is then built "
                "before the workflow is submitted), or give container_image=."
            )
        _check_runtime_for_build(session, runtime)
        with _build_lock:
            from slurm._client.packaging.container import build_and_push

            reference = build_and_push(build, exists=_exists_on_client, digest_of=_digest_on_client)
        state.built[build.key] = reference
        state.checked.add(reference)
        return reference


def _check_runtime_for_build(session: Session, runtime: Any) -> None:
    """Before a build: the cluster can run the image (pyxis, or Apptainer, which runs
    it converted to a ``.sif``), as the task's ``container_runtime`` asks."""
    what = "an image built from a Dockerfile (packaging='container')"
    if runtime == "apptainer":
        return  # resolve_runtime checks that the login host has it
    if runtime == "pyxis" or not session.apptainer_version():
        check_pyxis(session, what)


def prepare(
    session: Session, task: SubmittedTask, sdk_options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the SDK options this submission runs with, the container defaults of the tasks a
    workflow submits).

    Builds and pushes the image when the packaging is ``"container"`` and no
    ``container_image`` is given (``container_image=False`` runs the task without one).
    A workflow's own options lose their container settings, which become its tasks'
    defaults (see the module docstring).

    Raises:
        ConfigurationError: As :func:`build_for`, or the build or push failed.
    """
    options = dict(sdk_options)
    build = build_for(session, options)
    # An explicit container_image wins (False: this task runs on the node, no image).
    if build is not None and options.get("container_image") is None:
        runtime = options.get("container_runtime")
        options["container_image"] = _reference(session, build, task, runtime)
    if not task.is_workflow:
        return options, {}
    for_children = {k: options.pop(k) for k in CONTAINER_OPTIONS if options.get(k)}
    if for_children:
        logger.info(
            "workflow %s runs outside the container (it submits its tasks with sbatch); its "
            "tasks run in %s",
            task.name,
            for_children.get("container_image"),
        )
    return options, for_children


def check_image(session: Session, image: str, python: str) -> str:
    """Before submission: a pyxis registry reference is in its registry, and one by tag
    runs by the digest pinned for its tag (:mod:`slurm._client.packaging.pins`); asked
    once per cluster and reference, from the login host with ``python``. Returns the
    reference to run. Images built here are known to be there, by digest when their
    registry told it.

    A registry that cannot be asked (it wants credentials, which enroot has, or the
    login host cannot reach it) leaves a tag with no pin yet to run by the tag, logged.

    Raises:
        ConfigurationError: As :func:`slurm._client.packaging.registry.judge_answer`, or
            the tag's pin file cannot be read.
    """
    state = session.images
    with state.lock:
        if image in state.checked:
            return state.pinned.get(image, image)
    from slurm._client.packaging.registry import judge_answer, manifest_answer, parse_reference

    ref = parse_reference(image)
    run = image
    if ref is not None:
        answer = manifest_answer(session.transport, python, ref)
        there = judge_answer(image, ref, answer)
        if ref.digest is None:
            run = _by_pinned_digest(session, image, ref, answer if there else {})
    with state.lock:
        state.checked.add(image)
        state.pinned[image] = run
    return run


def _by_pinned_digest(
    session: Session, image: str, ref: ImageReference, answer: Mapping[str, Any]
) -> str:
    """``image`` (a pyxis reference by tag) with the digest pinned for its tag: pinned
    now from the registry's ``answer`` when there is no pin yet."""
    from slurm._client.packaging.pins import pin, pinned_digest

    transport, root = session.transport, session.store.root
    digest = answer.get("digest")
    if isinstance(digest, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        spelled = f"{ref.registry}#{ref.name}@{digest}"
        return f"{image}@{pin(transport, root, replace(ref, digest=digest), spelled).digest}"
    pinned = pinned_digest(transport, root, ref)
    if pinned is not None:
        return f"{image}@{pinned}"
    logger.warning(
        "%s runs by its tag, not pinned to a digest: its registry did not say which digest "
        "the tag names. Give it as REGISTRY#NAME@sha256:... to be sure of what runs",
        image,
    )
    return image


#: The earlier SDK's ``default_packaging_<key>`` keywords that are keys of ``packaging=``.
_EARLIER_PACKAGING_KEYS = ("python_version", "build_tool")


def earlier_spellings(
    packaging: Any,
    default_packaging: Any,
    default_options: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> tuple[Any, Mapping[str, Any] | None]:
    """``Cluster(default_packaging=..., default_packaging_<key>=...)``, the earlier SDK's
    spellings, as (``packaging``, ``default_options`` with ``packaging_<key>``):
    ``default_packaging_mounts`` is the option ``container_mounts`` of every task
    (``default_packaging_srun_args``: ``srun_args``),
    ``default_packaging_python_version``/``_build_tool`` are keys of ``packaging``.

    Raises:
        ConfigurationError: an unknown keyword, or ``packaging`` given twice.
    """
    flat = {f"default_{option}": option for option in FLAT_OPTIONS}
    flat["default_packaging_mounts"] = "container_mounts"
    flat["default_packaging_srun_args"] = "srun_args"
    keys = {f"default_packaging_{key}": key for key in _EARLIER_PACKAGING_KEYS}
    unknown = sorted(set(extra) - set(flat) - set(keys))
    if unknown:
        from slurm._client.settings import FIELDS, unknown_names

        known = [f.name for f in FIELDS] + sorted(flat) + sorted(keys)
        raise ConfigurationError(
            f"Cluster() got unknown setting {unknown_names(unknown, known)}. Valid settings: "
            f"{', '.join(f.name for f in FIELDS)}; the earlier SDK's packaging spellings "
            f"default_packaging and {', '.join(sorted([*flat, *keys]))}."
        )
    if default_packaging is not None:
        if packaging is not None and packaging != default_packaging:
            raise ConfigurationError(
                "Cluster(): give packaging= or default_packaging= (its earlier name), not both."
            )
        packaging = default_packaging
    packaging_keys = {keys[k]: v for k, v in extra.items() if k in keys and v is not None}
    if packaging_keys:
        table = {"type": packaging} if isinstance(packaging, str) else dict(packaging or {})
        packaging = {**table, **packaging_keys}
    given = {flat[k]: v for k, v in extra.items() if k in flat and v is not None}
    mounts = given.get("container_mounts")
    if isinstance(mounts, list | tuple):
        given["container_mounts"] = ",".join(str(m) for m in mounts)
    if given:
        default_options = {**(default_options or {}), **given}
    return packaging, default_options


def check_pyxis(session: Session, what: str) -> None:
    """The cluster's srun knows pyxis's ``--container-image`` (asked once per Session).

    Raises:
        ConfigurationError: it does not; ``what`` says what asked for a container.
    """
    if "--container-image" not in session.srun_help():
        raise ConfigurationError(
            f"The task asks for {what}, but this cluster's srun has no --container-image "
            "option: pyxis (the Slurm plugin that runs tasks in containers) is not installed "
            "there. Nothing was submitted. Ask the cluster's admins for pyxis + enroot, or "
            "drop the container (on the dev cluster: `slurm devcluster up --containers`)."
        )


def resolve_runtime(session: Session, spec: ContainerSpec) -> ContainerSpec:
    """``spec`` with its runtime resolved: ``"auto"`` becomes pyxis when the cluster's
    srun has it, else Apptainer when the login host has ``apptainer`` (logged); an
    explicit runtime must be there.

    Raises:
        ConfigurationError: the cluster lacks the runtime asked for (or any, for "auto").
    """
    what = f"container_image={spec.image!r}"
    if spec.runtime == "auto":
        if "--container-image" in session.srun_help():
            logger.info("container_runtime='auto': this cluster has pyxis; %s runs with it", what)
            return replace(spec, runtime="pyxis")
        if session.apptainer_version():
            logger.info(
                "container_runtime='auto': this cluster has Apptainer %s (no pyxis); %s runs "
                "with it",
                session.apptainer_version(),
                what,
            )
            return replace(spec, runtime="apptainer")
        raise ConfigurationError(
            f"The task asks for {what}, but this cluster has no container runtime: its srun "
            "has no --container-image option (pyxis) and its login host no `apptainer`. "
            "Nothing was submitted. Ask the cluster's admins for pyxis + enroot or "
            "Apptainer, or drop the container (on the dev cluster: `slurm devcluster up "
            "--containers` for pyxis, `--slurm 26.05 --apptainer` for Apptainer)."
        )
    if spec.runtime == "apptainer" and not session.apptainer_version():
        raise ConfigurationError(
            f"The task asks for container_runtime='apptainer' ({what}), but `apptainer` is "
            "not on the PATH of this cluster's login host. Nothing was submitted. Load it "
            "there (a site's `module load apptainer`, in the PATH of the SSH session), use "
            "container_runtime='pyxis' or 'auto', or, on the dev cluster, bring up one with "
            "it (`slurm devcluster up --slurm 26.05 --apptainer`)."
        )
    if spec.runtime == "pyxis":
        check_pyxis(session, what)
    return spec


def _apptainer_image(session: Session, spec: ContainerSpec, python: str) -> ContainerSpec:
    """A registry reference (``docker://``, ``oras://``) pinned and pulled into the
    ``.sif`` cache (:mod:`slurm._client.packaging.sif`); a path as it is."""
    image = spec.image
    from slurm._client.packaging.registry import parse_reference

    pyxis_ref = parse_reference(image)
    if pyxis_ref is not None:  # REGISTRY#NAME:TAG, pyxis's spelling (a built image's)
        image = f"docker://{pyxis_ref.registry}/{pyxis_ref.name}:{pyxis_ref.tag}"
        if pyxis_ref.digest:
            image += f"@{pyxis_ref.digest}"
    if image.startswith(("docker://", "oras://")):
        from slurm._client.packaging.sif import pull_image

        pulled = pull_image(session, image, python)
        return replace(spec, image=pulled.path, source=pulled.reference.uri)
    if not image.startswith("/"):
        raise ConfigurationError(
            f"container_image {image!r} is neither a path nor a registry reference: with "
            "container_runtime='apptainer' give a .sif file on the cluster's shared file "
            "system, or 'docker://HOST[:PORT]/NAME:TAG' (or oras://), pulled once into a "
            ".sif cache. Nothing was submitted."
        )
    return spec


def _check_sif(session: Session, spec: ContainerSpec) -> None:
    """An Apptainer image is a SIF file on the cluster."""
    image = spec.image
    try:
        head, _ = session.transport.read_range(image, 0, 64)
    except (FileNotFoundError, IsADirectoryError, PermissionError, OSError) as exc:
        raise ConfigurationError(
            f"container_image {image!r} cannot be read on the cluster ({exc}). Nothing was "
            "submitted. Give the path of a .sif file there (made with `apptainer build` or "
            "`apptainer pull`), on a file system the compute nodes share."
        ) from exc
    if not is_sif(head):
        raise ConfigurationError(
            f"container_image {image!r} is not a SIF image (its first bytes lack "
            "SIF_MAGIC). Nothing was submitted. With container_runtime='apptainer' give a "
            ".sif file (`apptainer build NAME.sif SOURCE`); a sandbox directory or a .sqsh "
            "file is not one."
        )


def prepare_for_node(session: Session, sdk_options: Mapping[str, Any], python: str) -> None:
    """Before a workflow is submitted: the image its tasks run in (its container
    options), for Apptainer pinned and pulled here, since its node pulls nothing.

    Raises:
        ConfigurationError: as :func:`check_container`.
    """
    spec = container_spec(sdk_options, shared=())
    if spec is None:
        return
    pyxis = spec.runtime == "pyxis" or (
        spec.runtime == "auto" and "--container-image" in session.srun_help()
    )
    if pyxis:  # pinned here, before the workflow's node first runs it (pyxis pulls there)
        if not spec.image.startswith("/"):
            check_image(session, spec.image, python)
        return
    if spec.runtime == "auto" and not session.apptainer_version():
        return  # no runtime at all: the tasks are refused on the node
    _apptainer_image(session, replace(spec, runtime="apptainer"), python)


def check_container(session: Session, spec: ContainerSpec, python: str) -> ContainerSpec:
    """Before submitting a task in a container: its runtime resolved and on the cluster
    (:func:`resolve_runtime`); for Apptainer, a registry reference pinned and pulled
    (:mod:`slurm._client.packaging.sif`) and the image a readable SIF file; for pyxis,
    an image given as a path exists, and one given as a registry reference is in its
    registry (asked from the login host with ``python``, see
    :mod:`slurm._client.packaging.registry`). Returns the spec with its runtime.

    Raises:
        ConfigurationError: saying what to do.
    """
    transport = session.transport
    spec = resolve_runtime(session, spec)
    if spec.runtime == "apptainer":
        spec = _apptainer_image(session, spec, python)
        _check_sif(session, spec)
        return spec
    if spec.image.startswith("/") and not transport.exists(spec.image):
        raise ConfigurationError(
            f"container_image {spec.image!r} does not exist on the cluster. Nothing was "
            "submitted. Give the path of a squashfs image there (e.g. made with "
            "`enroot import`), or a registry reference such as 'registry#name:tag'."
        )
    if not spec.image.startswith("/"):
        run = check_image(session, spec.image, python)
        if run != spec.image:
            return replace(spec, image=run, source=run)
    return spec
