"""Images built from a Dockerfile: ``packaging="container"``.

The image is built on the submitting machine with podman (or docker), tagged by
the hash of its inputs (the Dockerfile and the build context), pushed to the
configured registry and named to pyxis as ``REGISTRY#NAME:TAG``. The same inputs
give the same tag: an image the registry already has is neither built nor pushed
again, and a running workflow's children get the reference it was given (see
:mod:`slurm._client.packaging.images`): nothing is built on a compute node.

The keys (in ``packaging={"type": "container", ...}``, or as the task or cluster
options ``packaging_<key>``, the earlier SDK's spellings)::

    dockerfile   the Dockerfile (default: CONTEXT/Dockerfile)
    context      the build context (default: the Dockerfile's directory, else ".")
    registry     where to push, "HOST[:PORT]" (required)
    name         the repository (default "slurm-sdk/<context directory's name>")
    push         False: build and tag only; the image must reach the registry otherwise
    platform     e.g. "linux/amd64" (default: the builder's)
    tls_verify   default: False for a registry on this machine (loopback or one of its
                 own addresses, as the dev cluster's), True for any other
    runtime      "podman", "docker" or "auto" (podman if installed, else docker)
    build_args   {"NAME": "value"}: --build-arg each (they count in the tag)
    build_secrets  "id=ID,src=FILE", "id=ID,env=VAR" or tables: --secret each
    no_cache     True: build (--no-cache) and push even when the registry has the tag

Pure parts (tags, argv, the builder's flags) are separate from the one function
that runs the builder, :func:`build_and_push`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slurm._slurm.packaging import BUILD_KEYS
from slurm.errors import ConfigurationError

__all__ = [
    "BUILD_KEYS",
    "ImageBuild",
    "build_and_push",
    "build_argv",
    "content_tag",
    "default_tls_verify",
    "find_builder",
    "ignore_file_text",
    "image_build",
    "is_own_address",
    "podman_flags",
    "push_argv",
]

logger = logging.getLogger(__name__)

_RUNTIMES = ("auto", "podman", "docker")
_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")
_ALWAYS_IGNORED = (".git",)


@dataclass(frozen=True)
class ImageBuild:
    """One image to build: the keys above, as given (paths not yet resolved)."""

    dockerfile: str | None = None
    context: str | None = None
    registry: str | None = None
    name: str | None = None
    push: bool = True
    platform: str | None = None
    tls_verify: bool | None = None
    runtime: str = "auto"
    #: ``--build-arg NAME=VALUE`` each (part of the tag: other arguments, another image).
    build_args: tuple[tuple[str, str], ...] = ()
    #: ``--secret id=ID,src=FILE`` or ``id=ID,env=VARIABLE`` each (never in the tag or image).
    build_secrets: tuple[str, ...] = ()
    #: Build again even when the registry has the tag (``--no-cache``).
    no_cache: bool = False
    #: Run the pushed image by its digest (``REGISTRY#NAME:TAG@sha256:...``), as the
    #: registry names it, rather than by its tag, which anyone who may push can move.
    #: Unset: by digest whenever the image is pushed and its registry tells the digest.
    use_digest: bool | None = None

    @property
    def key(self) -> str:
        """What identifies this build among a run's images (the inputs as given)."""
        return repr(tuple(getattr(self, k) for k in BUILD_KEYS))

    def paths(self) -> tuple[Path, Path]:
        """(Dockerfile, context), absolute.

        Raises:
            ConfigurationError: either is missing.
        """
        if self.context:
            context = Path(self.context).expanduser().absolute()
        elif self.dockerfile:
            context = Path(self.dockerfile).expanduser().absolute().parent
        else:
            context = Path.cwd()
        dockerfile = Path(self.dockerfile).expanduser() if self.dockerfile else Path("Dockerfile")
        if not dockerfile.is_absolute():
            dockerfile = (Path.cwd() if self.dockerfile else context) / dockerfile
        if not dockerfile.is_file():
            raise ConfigurationError(
                f"packaging='container' builds the image from {dockerfile}, which does not "
                "exist. Nothing was submitted. Give packaging_dockerfile='path/to/Dockerfile' "
                "(or packaging={'type': 'container', 'dockerfile': ...}), or a prebuilt image "
                "as container_image=."
            )
        if not context.is_dir():
            raise ConfigurationError(
                f"packaging_context {self.context!r} is not a directory. Nothing was submitted."
            )
        return dockerfile, context

    def repository(self, context: Path) -> str:
        """The image's name in the registry."""
        if self.name:
            return self.name
        base = re.sub(r"[^a-z0-9]+", "-", context.name.lower()).strip("-") or "image"
        return f"slurm-sdk/{base}"

    def verify_tls(self) -> bool:
        """Whether the builder checks the registry's certificate."""
        if self.tls_verify is not None:
            return self.tls_verify
        return default_tls_verify(str(self.registry))


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ConfigurationError(f"packaging {key}={value!r}: give True or False.")


def image_build(values: Mapping[str, Any]) -> ImageBuild:
    """An :class:`ImageBuild` from the keys above (``None`` values are unset).

    Raises:
        ConfigurationError: an unknown key, a bad value, or no registry.
    """
    unknown = sorted(set(values) - set(BUILD_KEYS))
    if unknown:
        raise ConfigurationError(
            f"packaging='container' does not know {unknown}; its keys are {list(BUILD_KEYS)} "
            "(also as options packaging_<key>)."
        )
    chosen = {k: v for k, v in values.items() if v is not None}
    for key in ("dockerfile", "context", "registry", "name", "platform", "runtime"):
        if key in chosen and not isinstance(chosen[key], str | os.PathLike):
            raise ConfigurationError(f"packaging {key}={chosen[key]!r}: give a string.")
        if key in chosen:
            chosen[key] = os.fspath(chosen[key])
    for key in ("push", "tls_verify", "no_cache", "use_digest"):
        if key in chosen:
            chosen[key] = _flag(chosen[key], key)
    if "build_args" in chosen:
        chosen["build_args"] = _build_args(chosen["build_args"])
    if "build_secrets" in chosen:
        chosen["build_secrets"] = tuple(_secret(s) for s in _listed(chosen["build_secrets"]))
    registry = chosen.get("registry")
    if not registry or not _REGISTRY_RE.match(registry):
        raise ConfigurationError(
            f"packaging='container' needs the registry to push the image to, as "
            f"packaging_registry='HOST[:PORT]' (got {registry!r}). Nothing was submitted. "
            "The dev cluster's: `slurm devcluster status --json` (containers.registry)."
        )
    name = chosen.get("name")
    if name is not None and not _NAME_RE.match(name):
        raise ConfigurationError(
            f"packaging name={name!r} is not a repository name (lower case letters, digits, "
            "'.', '_', '-', and '/' between parts)."
        )
    runtime = str(chosen.get("runtime", "auto")).lower()
    if runtime not in _RUNTIMES:
        raise ConfigurationError(f"packaging runtime={runtime!r}: one of {list(_RUNTIMES)}.")
    chosen["runtime"] = runtime
    return ImageBuild(**chosen)


def _build_args(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) for k in value
    ):
        raise ConfigurationError(
            f"packaging build_args={value!r}: give a table of NAME = value, e.g. "
            "{'PYTHON_VERSION': '3.11'} (each becomes --build-arg NAME=value)."
        )
    return tuple(sorted((k, str(v)) for k, v in value.items()))


def _listed(value: Any) -> list[Any]:
    return [value] if isinstance(value, str | Mapping) else list(value or ())


def _secret(entry: Any) -> str:
    """A build secret as the builder's ``--secret`` value: from ``"id=ID,src=FILE"`` (or
    ``env=VARIABLE``) or a table ``{id, file|src|path}`` / ``{id, env}``."""
    if isinstance(entry, str):
        entry = dict(part.strip().split("=", 1) for part in entry.split(",") if "=" in part)
    if not isinstance(entry, Mapping):
        entry = {}
    ident = entry.get("id")
    file = entry.get("file") or entry.get("src") or entry.get("path")
    env = entry.get("env")
    if not ident or bool(file) == bool(env):
        raise ConfigurationError(
            f"packaging build_secrets entry {entry!r}: give an id and either a file or an "
            "environment variable: 'id=token,src=~/.token', {'id': 'token', 'env': 'TOKEN'}."
        )
    if file:
        path = Path(str(file)).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"build secret {ident!r}: {path} does not exist. Nothing was submitted."
            )
        return f"id={ident},src={path}"
    if str(env) not in os.environ:
        raise ConfigurationError(
            f"build secret {ident!r}: the environment variable {env} is not set. Nothing "
            "was submitted."
        )
    return f"id={ident},env={env}"


def default_tls_verify(registry: str) -> bool:
    """False for a registry on this machine: a loopback address, or an address of one
    of its own interfaces (the dev cluster's registry on its nodes' bridge), whose
    traffic never leaves the machine. True for every other, private addresses
    included: a registry elsewhere on a site's network is reached over TLS unless
    ``packaging_tls_verify=False`` says otherwise."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost":
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return not (address.is_loopback or is_own_address(address))


def is_own_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` belongs to one of this machine's interfaces (a socket can be
    bound to it; nothing is sent)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


def _ignore_lines(context: Path) -> list[str]:
    """The context's own ignore file, as the builder reads it: ``.containerignore``,
    else ``.dockerignore``."""
    for name in (".containerignore", ".dockerignore"):
        try:
            return (context / name).read_text().splitlines()
        except OSError:
            continue
    return []


def _ignore_patterns(context: Path) -> list[str]:
    lines = _ignore_lines(context)
    return [line.strip().strip("/") for line in lines if line.strip() and line[0] != "#"]


def ignore_file_text(context: Path) -> str:
    """The ignore file a build uses: the context's own lines, then ``.git`` (its history,
    and any credentials its config holds, would be in the image and its registry)."""
    lines = _ignore_lines(context)
    return "\n".join([*lines, *_ALWAYS_IGNORED]) + "\n"


def _ignored(relative: str, patterns: Iterable[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if parts[0] in _ALWAYS_IGNORED:
        return True
    return any(fnmatch.fnmatch(p, pat) for pat in patterns if pat[0] != "!" for p in prefixes)


def content_tag(
    dockerfile: Path,
    context: Path,
    platform: str | None = None,
    build_args: tuple[tuple[str, str], ...] = (),
) -> str:
    """The image's tag: a hash of the Dockerfile, of every file of the context (path,
    executable bit, content; ``.git`` and what ``.dockerignore`` lists left out) and of
    the build arguments."""
    digest = hashlib.sha256()
    digest.update(b"dockerfile\0" + dockerfile.read_bytes() + b"\0")
    digest.update(f"platform\0{platform or ''}\0".encode())
    if build_args:
        digest.update(json.dumps(build_args).encode() + b"\0")
    patterns = _ignore_patterns(context)
    for root, dirs, files in os.walk(context):
        dirs.sort()
        rel_root = os.path.relpath(root, context)
        dirs[:] = [d for d in dirs if not _ignored(os.path.normpath(f"{rel_root}/{d}"), patterns)]
        for name in sorted(files):
            path = Path(root, name)
            relative = os.path.normpath(f"{rel_root}/{name}")
            if _ignored(relative, patterns):
                continue
            digest.update(relative.encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link\0" + os.readlink(path).encode() + b"\0")
                continue
            digest.update(b"x\0" if os.access(path, os.X_OK) else b"-\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(b"\0")
    return "c" + digest.hexdigest()[:20]


def podman_flags(*, systemd: bool, hybrid_cgroups: bool, have_runc: bool) -> list[str]:
    """podman's global flags for this machine: without systemd, cgroupfs and a file
    for events (no journald); on hybrid cgroups (v1 with a v2 tree), runc, which
    handles them (crun refuses)."""
    flags: list[str] = []
    if not systemd:
        flags += ["--cgroup-manager=cgroupfs", "--events-backend=file"]
    if hybrid_cgroups and have_runc:
        flags.append("--runtime=runc")
    return flags


def _machine_podman_flags() -> list[str]:
    unified = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    try:
        hybrid = bool(unified.read_text().split())
    except OSError:
        hybrid = False
    return podman_flags(
        systemd=Path("/run/systemd/system").is_dir(),
        hybrid_cgroups=hybrid,
        have_runc=shutil.which("runc") is not None,
    )


def build_argv(
    builder: str,
    build: ImageBuild,
    dockerfile: Path,
    context: Path,
    reference: str,
    ignorefile: Path | None = None,
) -> list[str]:
    """The build command (``builder`` is ``podman`` or ``docker``). Steps run without
    a network (``--network=none``): what they need comes from the context or the base.
    ``ignorefile`` (podman): what the context leaves out (:func:`ignore_file_text`)."""
    argv = [builder]
    if builder == "podman":
        argv += _machine_podman_flags()
    argv += ["build", "--network=none", "-f", str(dockerfile), "-t", reference]
    if builder == "podman":
        # The Docker v2 format, which every registry and enroot take (podman's default is OCI).
        argv += ["--format=docker", f"--tls-verify={str(build.verify_tls()).lower()}"]
        if ignorefile is not None:
            argv.append(f"--ignorefile={ignorefile}")
    if build.platform:
        argv.append(f"--platform={build.platform}")
    for name, value in build.build_args:
        argv += ["--build-arg", f"{name}={value}"]
    for secret in build.build_secrets:
        argv += ["--secret", secret]
    if build.no_cache:
        argv.append("--no-cache")
    return [*argv, str(context)]


def push_argv(builder: str, build: ImageBuild, reference: str) -> list[str]:
    if builder == "podman":
        flags = _machine_podman_flags()
        return [
            "podman",
            *flags,
            "push",
            f"--tls-verify={str(build.verify_tls()).lower()}",
            reference,
        ]
    return [builder, "push", reference]


def find_builder(runtime: str) -> str:
    """``podman`` or ``docker``, as chosen and installed.

    Raises:
        ConfigurationError: neither is installed (or the one asked for is not).
    """
    wanted = ["podman", "docker"] if runtime == "auto" else [runtime]
    for name in wanted:
        if shutil.which(name):
            return name
    raise ConfigurationError(
        f"packaging='container' builds the image with {' or '.join(wanted)}, which is not "
        "installed on this machine. Nothing was submitted. Install podman (Debian: "
        "`apt-get install podman`), or build the image elsewhere and give it as container_image=."
    )


def _run_streaming(argv: list[str], what: str, timeout: float) -> str:
    """Run a build or push, logging its steps as they come; the whole output."""
    lines: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 (argv list, never a shell)
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert proc.stdout is not None  # noqa: S101 (PIPE above; for mypy)
    with proc:
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            if line.startswith(("STEP ", "Step ", "#")) or "Writing manifest" in line:
                logger.info("%s: %s", what, line)
            else:
                logger.debug("%s: %s", what, line)
            if time.monotonic() - started > timeout:
                proc.kill()
                lines.append(f"(stopped after {timeout:.0f} s)")
                break
    output = "\n".join(lines)
    if proc.returncode != 0:
        raise _failure(argv, what, proc.returncode, output)
    return output


def _failure(argv: list[str], what: str, code: int, output: str) -> ConfigurationError:
    tail = "\n".join(output.strip().splitlines()[-40:])
    hint = ""
    if what.startswith("push"):
        hint = (
            " The registry refused the image: check its address, that you may push there "
            "(`podman login REGISTRY`), and packaging_tls_verify=False for a registry over "
            "plain HTTP."
        )
    return ConfigurationError(
        f"{what} failed (`{' '.join(argv)}`, exit code {code}). Nothing was submitted.{hint}\n"
        f"{tail}"
    )


def build_and_push(
    build: ImageBuild, *, exists: Any = None, digest_of: Any = None, timeout: float = 3600
) -> str:
    """Build the image (unless ``exists(podman reference)`` says the registry has it),
    push it, and return its reference as pyxis spells it: ``REGISTRY#NAME:TAG@DIGEST``,
    the digest from ``digest_of(podman reference)``, which asks the registry (a tag can
    be moved by anyone who may push there; a digest cannot). ``REGISTRY#NAME:TAG`` with
    ``use_digest=False``, without a push, or when the registry does not tell the digest
    (logged).

    Raises:
        ConfigurationError: no Dockerfile, no builder, or the build or push failed
            (the builder's output quoted); ``use_digest=True`` without a push, or with a
            registry that does not tell the digest.
    """
    if build.use_digest and not build.push:
        raise ConfigurationError(
            "packaging use_digest=True names the image by the digest its registry gives it, "
            "but packaging_push=False does not push it. Nothing was submitted. Push it, or "
            "drop use_digest."
        )
    pyxis = _built(build, exists, timeout)
    if build.use_digest is False or not build.push:
        return pyxis
    reference = pyxis.replace("#", "/", 1)
    digest = digest_of(reference) if digest_of is not None else None
    if not digest or not re.fullmatch(r"sha256:[0-9a-f]{64}", str(digest)):
        if build.use_digest is None:
            logger.warning(
                "the registry did not tell the digest of %s (got %r); jobs run it by its tag",
                reference,
                digest,
            )
            return pyxis
        raise ConfigurationError(
            f"packaging use_digest=True: the registry did not tell the digest of {reference} "
            f"(got {digest!r}). Nothing was submitted. Check that the registry answers "
            "`GET /v2/NAME/manifests/TAG` with a Docker-Content-Digest header, or drop "
            "use_digest (the tag is a hash of the Dockerfile and context already)."
        )
    logger.info("image %s is %s in its registry; jobs run it by that digest", reference, digest)
    return f"{pyxis}@{digest}"


def _built(build: ImageBuild, exists: Any, timeout: float) -> str:
    """Build and push (see :func:`build_and_push`); the reference by tag."""
    dockerfile, context = build.paths()
    tag = content_tag(dockerfile, context, build.platform, build.build_args)
    repository = build.repository(context)
    reference = f"{build.registry}/{repository}:{tag}"
    pyxis = f"{build.registry}#{repository}:{tag}"
    if build.push and not build.no_cache and exists is not None and exists(reference):
        logger.info("image %s is in the registry already (same Dockerfile and context)", reference)
        return pyxis
    builder = find_builder(build.runtime)
    started = time.monotonic()
    logger.info(
        "building image %s with %s (%s, context %s)", reference, builder, dockerfile, context
    )
    if builder != "podman" and (context / ".git").exists():
        logger.warning(
            "the build context %s holds .git and %s cannot be told to leave it out: list "
            ".git in its .dockerignore, or build with podman",
            context,
            builder,
        )
    with tempfile.TemporaryDirectory(prefix="slurm-sdk-build-") as scratch:
        ignorefile = Path(scratch, "ignore")
        ignorefile.write_text(ignore_file_text(context))
        argv = build_argv(builder, build, dockerfile, context, reference, ignorefile)
        _run_streaming(argv, "build", timeout)
    built = time.monotonic() - started
    if not build.push:
        logger.info("built image %s in %.1f s (not pushed: packaging_push=False)", reference, built)
        return pyxis
    logger.info("pushing image %s", reference)
    _run_streaming(push_argv(builder, build, reference), f"push to {build.registry}", timeout)
    logger.info(
        "built image %s in %.1f s, pushed in %.1f s",
        reference,
        built,
        time.monotonic() - started - built,
    )
    return pyxis
