"""Local source on the cluster: packed once per content hash, uploaded once, reused.

Layout under the environments directory (default ``{job_base_dir}/.envs``)::

    .code/<sha256>/          one closure of local modules and packages, read-only;
                             jobs put exactly this directory first on sys.path
    .code/.incoming-*        an upload being unpacked (renamed into place when complete)

A directory named by its content hash is complete once it exists (it is
unpacked aside and renamed), so a client that sees it reuses it with one
check, and a client process that shipped it once does not look again.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time

from slurm._client.packaging.closure import Closure
from slurm._transport.base import Transport
from slurm._wire.record import record
from slurm.errors import ConfigurationError

__all__ = ["ShippedSources", "ensure_sources", "pack", "sources_dir"]

logger = logging.getLogger(__name__)

#: Above this many bytes the closure is shipped with a warning: data belongs elsewhere.
LARGE_BYTES = 100 * 1024 * 1024

_known_lock = threading.Lock()


@record(frozen=True)
class ShippedSources:
    """Local source on the cluster.

    Attributes:
        key: Content hash of the closure.
        path: The directory jobs put first on ``sys.path``.
        names: The top-level modules and packages it holds.
        uploaded: Whether this call uploaded it (``False``: it was there).
        seconds: Time spent checking, packing and uploading.
    """

    key: str
    path: str
    names: tuple[str, ...]
    uploaded: bool
    seconds: float


def pack(closure: Closure, archive: str) -> int:
    """Write ``closure`` as a gzipped tar to ``archive``; return the bytes packed."""
    import tarfile  # only when source travels: not on the path of a call already shipped

    total = 0
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for relative, path in closure.files():
            info = tar.gettarinfo(str(path), arcname=relative)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            total += info.size
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return total


def _remember(known: set[str], final: str) -> None:
    with _known_lock:
        known.add(final)


def _unpack_script(archive: str, incoming: str, final: str) -> str:
    q = shlex.quote
    return "\n".join(
        [
            f"arc={q(archive)}; tmp={q(incoming)}; dst={q(final)}",
            'mkdir -p -- "$tmp" && tar -xzf "$arc" -C "$tmp" ||',
            '  { rm -rf -- "$tmp" "$arc"; exit 1; }',
            # Read-only sources; directories stay the owner's, for Python's __pycache__.
            'chmod -R a-w,a+rX -- "$tmp" && find "$tmp" -type d -exec chmod u+w {} +',
            'rm -f -- "$arc"',
            # Another client may have renamed the same closure into place meanwhile.
            'mv -T -- "$tmp" "$dst" 2>/dev/null || { chmod -R u+w -- "$tmp"; rm -rf -- "$tmp"; }',
            '[ -d "$dst" ]',
        ]
    )


def sources_dir(code_dir: str, closure: Closure) -> str:
    """Where ``closure`` lives under ``code_dir``: named by its content hash."""
    return f"{code_dir}/{closure.digest()[:32]}"


def ensure_sources(
    transport: Transport, code_dir: str, closure: Closure, known: set[str]
) -> ShippedSources:
    """``closure`` on the cluster under ``code_dir``, uploaded only if it is not there yet.

    ``known`` holds the closures this client already found or put there (the
    session's): those are not looked for again.

    Raises:
        ConfigurationError: The upload or unpacking failed.
    """
    started = time.perf_counter()
    final = sources_dir(code_dir, closure)
    key = final.rsplit("/", 1)[1]
    with _known_lock:
        if final in known:
            return ShippedSources(key, final, closure.names, False, 0.0)
    if transport.exists(final):
        _remember(known, final)
        return ShippedSources(key, final, closure.names, False, time.perf_counter() - started)
    import secrets
    import tempfile

    token = secrets.token_hex(4)
    archive = f"{code_dir}/.incoming-{key}-{token}.tar.gz"
    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as local:
        size = pack(closure, local.name)
        if size > LARGE_BYTES:
            logger.warning(
                "shipping %.0f MB of local source (%s) to the cluster: data files inside your "
                "packages travel with them; keep large data outside the package directories",
                size / 1e6,
                ", ".join(closure.names),
            )
        transport.mkdir(code_dir, mode=0o700)
        transport.upload(local.name, archive, mode=0o600)
    script = _unpack_script(archive, f"{code_dir}/.incoming-{key}-{token}", final)
    result = transport.run(["sh", "-c", script], check=False)
    if result.returncode != 0:
        raise ConfigurationError(
            f"Unpacking your local source ({', '.join(closure.names)}) into {final} on "
            f"{transport.description} failed (exit code {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}. Nothing was submitted. Check "
            "that the cluster has `tar` and space in the job base directory."
        )
    _remember(known, final)
    seconds = time.perf_counter() - started
    logger.info(
        "shipped local source %s to %s (%d bytes, %.2f s)",
        ", ".join(closure.names),
        final,
        size,
        seconds,
    )
    return ShippedSources(key, final, closure.names, True, seconds)
