"""Registry images for Apptainer: resolved to a digest, pinned, pulled once into a
``.sif`` cache on the shared file system.

``container_image="docker://HOST[:PORT]/NAME:TAG"`` (or ``oras://``) with
``container_runtime="apptainer"`` goes through three steps before submission, all on
the login host (the cluster's transport), never on a compute node::

    resolve   the registry's HTTP API (GET /v2/NAME/manifests/TAG, asked by the login
              host's Python) gives the tag's digest (Docker-Content-Digest)
    pin       the tag's digest the first time, pinned for later runs
              (:mod:`slurm._client.packaging.pins`, shared with pyxis)
    pull      ROOT/.image-cache/sif/<scheme>-sha256-<hex>.sif, made by `apptainer
              pull` under an mkdir lock beside it (one pull per digest, however many
              clients ask at once), into a temporary name renamed when complete

A reference that carries its digest (``...@sha256:HEX``) is not pinned: the registry
must have that digest (else the task is refused), and it is pulled as such. A tag whose
registry cannot be asked (it wants credentials, or does not answer) is refused with
what to do: give the digest.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from slurm._client.packaging.container import default_tls_verify
from slurm._client.packaging.lock import DirLock
from slurm._client.packaging.pins import IMAGE_CACHE_DIR, pin, pinned_digest
from slurm._client.packaging.registry import ImageReference, manifest_answer, parse_uri
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._client.session import Session
    from slurm._transport.base import Transport

__all__ = ["IMAGE_CACHE_DIR", "CachedImage", "PulledImage", "cache_name", "cached", "pull_image"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PulledImage:
    """A registry image made a ``.sif`` file: where it is and what it is."""

    path: str  # the .sif file on the shared file system
    reference: ImageReference  # with its digest


@dataclass(frozen=True)
class CachedImage:
    """A ``.sif`` file in the cache: its path, size and last use."""

    path: str
    size: int
    used: float  # its mtime: pulled, or last reused

    @property
    def digest(self) -> str:
        """``sha256:HEX``, from its name."""
        return "sha256:" + self.path.rsplit("-sha256-", 1)[-1].removesuffix(".sif")


def cached(transport: Transport, root: str) -> list[CachedImage]:
    """The ``.sif`` files in the cache under ``root``, least recently used first."""
    directory = f"{root}/{IMAGE_CACHE_DIR}/sif"
    out = transport.run(
        ["find", directory, "-mindepth", "1", "-maxdepth", "1", "-type", "f",
         "-name", "*-sha256-*.sif", "-printf", "%p\\t%s\\t%T@\\n"],
        check=False,
    )  # fmt: skip
    images = []
    for line in out.stdout.splitlines():
        path, _, rest = line.partition("\t")
        size, _, used = rest.partition("\t")
        if path and size.isdigit():
            images.append(CachedImage(path, int(size), float(used or 0)))
    return sorted(images, key=lambda i: (i.used, i.path))


def cache_name(ref: ImageReference) -> str:
    """The ``.sif`` file's name for a reference with its digest: by digest only (the
    same digest is the same image, whatever its name or tag)."""
    assert ref.digest is not None  # noqa: S101 (resolved before)
    return f"{ref.scheme}-{ref.digest.replace(':', '-')}.sif"


def _ask(session: Session, python: str, ref: ImageReference) -> dict[str, object]:
    return manifest_answer(session.transport, python, ref)


def _resolve_digest(session: Session, python: str, ref: ImageReference) -> ImageReference:
    """``ref`` with its digest: checked in the registry when given, else the tag's,
    pinned the first time.

    Raises:
        ConfigurationError: the registry lacks the digest or tag, or cannot say which
            digest a tag has.
    """
    answer = _ask(session, python, ref)
    status = answer.get("status")
    if ref.digest is not None:
        if status == 200 and answer.get("digest") not in (None, ref.digest):
            raise ConfigurationError(
                f"container_image {ref.uri!r}: the registry {ref.registry} answers with the "
                f"digest {answer.get('digest')} for it, not {ref.digest}. Nothing was "
                "submitted. Check the digest (`apptainer inspect` or the registry's "
                "manifest) and give the one the registry has."
            )
        if status == 404:
            raise ConfigurationError(
                f"container_image {ref.uri!r}: the registry {ref.registry} has no manifest "
                f"{ref.digest} for {ref.name} (the digest does not match any image there). "
                "Nothing was submitted. Give a digest the registry has (drop @sha256:... to "
                "take the tag's, pinned), or push the image."
            )
        if status != 200:
            logger.warning(
                "could not check %s in its registry (%s); pulling it by its digest anyway",
                ref.uri,
                answer.get("error") or f"HTTP {status}",
            )
        return ref
    if status == 404:
        raise ConfigurationError(
            f"container_image {ref.uri!r}: the registry {ref.registry} has no image "
            f"{ref.name}:{ref.tag}. Nothing was submitted. Push it there first (`podman push "
            f"{ref.registry}/{ref.name}:{ref.tag}`) or fix the name or tag."
        )
    digest = answer.get("digest")
    if status != 200 or not isinstance(digest, str) or not digest.startswith("sha256:"):
        why = answer.get("error") or f"HTTP {status}"
        raise ConfigurationError(
            f"container_image {ref.uri!r}: could not ask the registry {ref.registry} from the "
            f"login host which digest the tag {ref.tag!r} names ({why}). Nothing was "
            "submitted. The SDK runs registry images pinned by digest: give it as "
            f"'{ref.scheme}://{ref.registry}/{ref.name}@sha256:...' (`apptainer inspect` or "
            "the registry shows it)."
        )
    return ImageReference(ref.registry, ref.name, ref.tag, digest, ref.scheme)


def _pull(session: Session, ref: ImageReference, target: str) -> None:
    """``apptainer pull`` into ``target``, once per digest (a lock beside it)."""
    transport = session.transport
    lock = DirLock(transport, f"{target}.lock")
    if not lock.acquire(ready_path=target):
        return  # pulled already (by another client, perhaps while this one waited)
    try:
        tmp = f"{target}.tmp-{secrets.token_hex(4)}"
        argv = ["apptainer", "pull"]
        if not default_tls_verify(ref.registry):  # an ad-hoc registry over plain HTTP
            argv.append("--no-https")
        argv += [tmp, ref.pull_uri]
        logger.info("pulling %s into %s (apptainer pull, on the login host)", ref.uri, target)
        began = time.monotonic()
        out = transport.run(argv, check=False, timeout=3600)
        if out.returncode != 0:
            transport.run(["rm", "-f", "--", tmp], check=False)
            tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-20:])
            raise ConfigurationError(
                f"container_image {ref.uri!r}: `{' '.join(argv)}` failed on the login host "
                f"(exit code {out.returncode}). Nothing was submitted. Check the reference and "
                f"that the login host reaches the registry.\n{tail}"
            )
        transport.run(["mv", "-f", "--", tmp, target], check=True)
        logger.info("pulled %s in %.1f s", ref.uri, time.monotonic() - began)
    finally:
        lock.release()


def _on_a_node(
    session: Session, directory: str, ref: ImageReference, image: str
) -> tuple[ImageReference, str]:
    """On a workflow's node: the pinned digest and the cached ``.sif``, without asking the
    registry or pulling (the client did both before submitting the workflow).

    Raises:
        ConfigurationError: there is no pin or no ``.sif`` for it.
    """
    if ref.digest is None:
        digest = pinned_digest(session.transport, session.store.root, ref)
        if digest:
            ref = replace(ref, digest=digest)
    target = f"{directory}/sif/{cache_name(ref)}" if ref.digest else ""
    if not target or not session.transport.exists(target):
        raise ConfigurationError(
            f"container_image {image!r} is not pulled yet, and this submission comes from a "
            "running workflow, on a compute node, where nothing is pulled. Nothing was "
            "submitted. Give the workflow the same container options (its tasks' image is "
            "then pulled before it is submitted), name the task in its "
            "with_dependencies([...]), or run one such task from the client first."
        )
    return ref, target


def pull_image(session: Session, image: str, python: str) -> PulledImage:
    """The ``.sif`` file of the registry reference ``image``, pinned and pulled once.

    Raises:
        ConfigurationError: ``image`` is not a registry reference naming its registry,
            the registry lacks it, its tag cannot be resolved, or the pull failed.
    """
    ref = parse_uri(image)
    if ref is None:
        raise ConfigurationError(
            f"container_image {image!r} is not a registry reference the SDK can pin: give "
            "'docker://HOST[:PORT]/NAME[:TAG][@sha256:DIGEST]' (or oras://), naming its "
            "registry's host. Nothing was submitted."
        )
    directory = f"{session.store.root}/{IMAGE_CACHE_DIR}"
    state = session.images
    with state.lock:
        known = state.pulled.get(image)
    if known is not None:
        return PulledImage(known[0], known[1])
    if not state.builds_here:  # a workflow's node: the client pinned and pulled it
        ref, target = _on_a_node(session, directory, ref, image)
    else:
        if ref.digest is None:
            current = _resolve_digest(session, python, ref)
            ref = pin(session.transport, session.store.root, current, current.pull_uri)
        else:
            ref = _resolve_digest(session, python, ref)
        session.transport.mkdir(f"{directory}/sif", mode=0o700)
        target = f"{directory}/sif/{cache_name(ref)}"
        if not session.transport.exists(target):
            _pull(session, ref, target)
        else:  # used: `slurm jobs prune --images-unused DAYS` goes by this
            session.transport.run(["touch", "-c", "--", target], check=False)
    with state.lock:
        state.pulled[image] = (target, ref)
    return PulledImage(target, ref)
