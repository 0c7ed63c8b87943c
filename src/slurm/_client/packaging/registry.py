"""Is a container image in its registry? Asked before submission, from the login host.

A reference as pyxis spells it, ``[docker://][USER@]REGISTRY#NAME[:TAG|@DIGEST]``,
names its registry; the login host asks that registry's HTTP API (Docker Registry
v2: ``GET /v2/NAME/manifests/TAG``, HTTPS first, then plain HTTP) whether the
manifest exists. A reference without ``REGISTRY#`` (Docker Hub, which wants a
token) or a registry asking for credentials is not checked: enroot has its own.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._transport.base import Transport

__all__ = [
    "ImageReference",
    "check_manifest",
    "judge_answer",
    "manifest_answer",
    "parse_reference",
    "parse_uri",
]

logger = logging.getLogger(__name__)

_REF_RE = re.compile(
    r"^(?:docker://)?(?:[^@#/]+@)?(?P<registry>[A-Za-z0-9.-]+(?::\d+)?)#"
    r"(?P<name>[a-z0-9][a-z0-9._/-]*?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)
# Run by the login host's Python: prints {"status": HTTP status} or {"error": why}.
_CHECK_SCRIPT = """
import json, ssl, sys, urllib.error, urllib.request
path, accept = sys.argv[1], sys.argv[2]
answer = {}
for scheme in ("https", "http"):
    request = urllib.request.Request(scheme + "://" + path, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=20, context=ssl.create_default_context()
                                    if scheme == "https" else None) as response:
            answer = {"status": response.status,
                      "digest": response.headers.get("Docker-Content-Digest")}
    except urllib.error.HTTPError as exc:
        answer = {"status": exc.code, "body": exc.read(300).decode("utf-8", "replace")}
    except Exception as exc:
        answer = {"error": scheme + ": " + str(getattr(exc, "reason", exc))}
        continue
    break
print(json.dumps(answer))
"""


@dataclass(frozen=True)
class ImageReference:
    """A registry reference's parts."""

    registry: str
    name: str
    tag: str = "latest"
    digest: str | None = None
    scheme: str = "docker"  # docker:// or oras:// (Apptainer's spellings)

    @property
    def uri(self) -> str:
        """``SCHEME://REGISTRY/NAME:TAG[@DIGEST]``, as Apptainer spells it."""
        at = f"@{self.digest}" if self.digest else ""
        return f"{self.scheme}://{self.registry}/{self.name}:{self.tag}{at}"

    @property
    def pull_uri(self) -> str:
        """What Apptainer pulls: by digest when there is one (the tag left out)."""
        if self.digest:
            return f"{self.scheme}://{self.registry}/{self.name}@{self.digest}"
        return f"{self.scheme}://{self.registry}/{self.name}:{self.tag}"

    @property
    def manifest_path(self) -> str:
        """``REGISTRY/v2/NAME/manifests/TAG`` (or the digest), without a scheme."""
        return f"{self.registry}/v2/{self.name}/manifests/{self.digest or self.tag}"


def parse_reference(image: str) -> ImageReference | None:
    """The parts of a pyxis reference naming its registry; None for a path or a
    reference without ``REGISTRY#`` (not checked).

    Example::

        >>> parse_reference("10.0.0.1:5000#sdk/python:3").manifest_path
        '10.0.0.1:5000/v2/sdk/python/manifests/3'
    """
    if image.startswith("/"):
        return None
    m = _REF_RE.match(image)
    if m is None:
        return None
    return ImageReference(m["registry"], m["name"], m["tag"] or "latest", m["digest"])


_URI_RE = re.compile(
    r"^(?P<scheme>docker|oras)://(?P<registry>(?:[A-Za-z0-9-]+\.[A-Za-z0-9.-]+|localhost|"
    r"[A-Za-z0-9.-]+:\d{1,5}|\[[0-9a-fA-F:]+\](?::\d{1,5})?)(?::\d{1,5})?)/"
    r"(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def parse_uri(image: str) -> ImageReference | None:
    """The parts of an Apptainer registry reference, ``docker://HOST[:PORT]/NAME[:TAG]
    [@sha256:DIGEST]`` or ``oras://...``, whose first part names its registry (a host
    with a dot or a port, or ``localhost``); None for anything else (a path, or a
    ``docker://NAME`` of Docker Hub, which names no registry).

    Example::

        >>> parse_uri("docker://10.0.0.1:5000/sdk/python:3").manifest_path
        '10.0.0.1:5000/v2/sdk/python/manifests/3'
    """
    m = _URI_RE.match(image)
    if m is None:
        return None
    return ImageReference(m["registry"], m["name"], m["tag"] or "latest", m["digest"], m["scheme"])


def manifest_answer(transport: Transport, python: str, ref: ImageReference) -> dict[str, Any]:
    """The registry's answer, asked by ``python`` where ``transport`` runs commands:
    ``{"status": HTTP status, "digest": the manifest's digest}``, or ``{"error": why}``
    when it could not be reached."""
    out = transport.run(
        [python, "-I", "-c", _CHECK_SCRIPT, ref.manifest_path, _ACCEPT], check=False, timeout=90
    )
    try:
        answer = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (out.stderr.strip() or out.stdout.strip())[-300:]}
    return dict(answer)


def check_manifest(transport: Transport, python: str, image: str) -> None:
    """Ask the registry, from the login host, whether ``image`` exists.

    Raises:
        ConfigurationError: As :func:`judge_answer`.
    """
    ref = parse_reference(image)
    if ref is not None:
        judge_answer(image, ref, manifest_answer(transport, python, ref))


def judge_answer(image: str, ref: ImageReference, answer: dict[str, Any]) -> bool:
    """Whether the registry's answer about ``image`` shows it there (True), or could not
    tell (False: logged; it asks for credentials, which enroot has, or the login host
    cannot reach it, while the nodes may).

    Raises:
        ConfigurationError: the registry answered that it has no such image (404), or
            refused the request otherwise (a 4xx/5xx other than asking for credentials).
    """
    status = answer.get("status")
    if status == 200:
        return True
    if status in (401, 403):
        logger.info(
            "not checking %s: its registry asks for credentials (enroot has its own)", image
        )
        return False
    if status is None:
        logger.warning(
            "could not reach the registry %s from the login host to check %s (%s); submitting "
            "anyway: the nodes may reach it",
            ref.registry,
            image,
            answer.get("error"),
        )
        return False
    what = (
        f"has no image {ref.name}:{ref.digest or ref.tag}"
        if status == 404
        else f"refused to show it (HTTP {status}: {str(answer.get('body', ''))[:200]})"
    )
    raise ConfigurationError(
        f"container_image {image!r}: the registry {ref.registry} {what}. Nothing was "
        f"submitted. Push the image there first (`podman push {ref.registry}/{ref.name}:"
        f"{ref.tag}`), fix the name or tag, or build it from a Dockerfile with "
        "packaging='container'."
    )
