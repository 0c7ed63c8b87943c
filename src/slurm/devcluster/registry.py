"""Pushing the base image to the dev cluster's registry on loopback (Docker Registry
HTTP API v2, schema 2 manifest, one layer), so that pulls through pyxis are real.

The layer (a gzipped tar of the image's root file system) is made once per machine
next to the cached ``.sqsh`` and reused; a push uploads only blobs the registry lacks.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from slurm.devcluster.proc import DevclusterError, run

__all__ = [
    "BASE_IMAGE_REPOSITORY",
    "IMAGE_CACHE",
    "files_layer",
    "image_cache_lock",
    "layer_for",
    "push_image",
    "tag_digest",
]

#: Images made once per machine (shared by every dev cluster on it).
IMAGE_CACHE = Path("/var/cache/slurm-sdk/devcluster-images")

BASE_IMAGE_REPOSITORY = "sdk/python"
_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
_LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
# Loopback only: no proxy from the environment may stand in between.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def layer_for(sqsh: Path) -> tuple[Path, str, str]:
    """(layer ``.tar.gz``, its digest, the digest of the uncompressed tar), made once."""
    layer = sqsh.with_suffix(".layer.tar.gz")
    meta = sqsh.with_suffix(".layer.json")
    if layer.is_file() and meta.is_file():
        data = json.loads(meta.read_text())
        return layer, data["digest"], data["diff_id"]
    rootfs, tar = sqsh.with_suffix(".rootfs.tmp"), sqsh.with_suffix(".tar.tmp")
    shutil.rmtree(rootfs, ignore_errors=True)
    try:
        run(["unsquashfs", "-q", "-no-progress", "-d", str(rootfs), str(sqsh)], timeout=600)
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."], timeout=600)
        diff_id = _sha256(tar)
        run(["pigz", "-1", "-f", "-n", str(tar)], timeout=600)  # -> .tar.tmp.gz
        Path(f"{tar}.gz").replace(layer)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
        tar.unlink(missing_ok=True)
    digest = _sha256(layer)
    meta.write_text(json.dumps({"digest": digest, "diff_id": diff_id}) + "\n")
    return layer, digest, diff_id


def _request(method: str, url: str, body: bytes | None = None, **headers: str) -> tuple[int, str]:

    req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
    try:
        with _OPENER.open(req, timeout=600) as resp:
            return resp.status, resp.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        if method == "HEAD" and exc.code == 404:
            return 404, ""
        raise DevclusterError(
            f"the registry refused {method} {url}: HTTP {exc.code} {exc.read()[:500]!r}"
        ) from exc
    except OSError as exc:
        raise DevclusterError(f"the registry at {url} did not answer: {exc}") from exc


def _push_blob(base: str, repo: str, digest: str, data: bytes | Path) -> None:
    if _request("HEAD", f"{base}/v2/{repo}/blobs/{digest}")[0] == 200:
        return
    _, location = _request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    url = location if location.startswith("http") else base + location
    url += ("&" if "?" in url else "?") + f"digest={digest}"
    body = data if isinstance(data, bytes) else data.read_bytes()
    _request("PUT", url, body, **{"Content-Type": "application/octet-stream"})


def files_layer(files: Mapping[str, bytes]) -> tuple[bytes, str, str]:
    """(a gzipped tar layer holding ``files``, absolute path -> content; its digest; the
    digest of the uncompressed tar), the same bytes for the same files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    data = raw.getvalue()
    packed = gzip.compress(data, mtime=0)
    return (
        packed,
        "sha256:" + hashlib.sha256(packed).hexdigest(),
        "sha256:" + hashlib.sha256(data).hexdigest(),
    )


def push_image(
    address: str,
    sqsh: Path,
    tag: str,
    *,
    repository: str = BASE_IMAGE_REPOSITORY,
    files: Mapping[str, bytes] | None = None,
) -> str:
    """Push ``sqsh``'s file system as ``repository:tag`` to the registry at ``address``
    (``127.0.0.1:PORT``), with a second layer holding ``files`` (path -> content) when
    given; return the reference as pyxis spells it."""
    with image_cache_lock():
        layer, digest, diff_id = layer_for(sqsh)
    base, repo = f"http://{address}", repository
    extra = files_layer(files) if files else None
    diff_ids = [diff_id] + ([extra[2]] if extra else [])
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            # One entry per layer: the registry builds the schema 1 answer enroot's
            # first request gets from it.
            "history": [
                {"created": "1970-01-01T00:00:00Z", "created_by": "mmdebstrap"},
                *([{"created": "1970-01-01T00:00:00Z", "created_by": "files"}] if extra else []),
            ],
        },
        sort_keys=True,
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    _push_blob(base, repo, digest, layer)
    layers = [{"mediaType": _LAYER_TYPE, "size": layer.stat().st_size, "digest": digest}]
    if extra:
        _push_blob(base, repo, extra[1], extra[0])
        layers.append({"mediaType": _LAYER_TYPE, "size": len(extra[0]), "digest": extra[1]})
    _push_blob(base, repo, config_digest, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _MANIFEST_TYPE,
            "config": {"mediaType": _CONFIG_TYPE, "size": len(config), "digest": config_digest},
            "layers": layers,
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    put = f"{base}/v2/{repo}/manifests/"
    _request("PUT", put + manifest_digest, manifest, **{"Content-Type": _MANIFEST_TYPE})
    # Under the tag, a list of one platform: enroot asks for a list first, which this
    # registry cannot make from a lone manifest (it answers 400).
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _LIST_TYPE,
            "manifests": [
                {
                    "mediaType": _MANIFEST_TYPE,
                    "size": len(manifest),
                    "digest": manifest_digest,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    _request("PUT", put + tag, index, **{"Content-Type": _LIST_TYPE})
    return f"{address}#{repo}:{tag}"


def tag_digest(address: str, repository: str, tag: str) -> str:
    """The digest the registry at ``address`` gives ``repository:tag`` now (its
    ``Docker-Content-Digest``: the list :func:`push_image` puts under the tag)."""
    url = f"http://{address}/v2/{repository}/manifests/{tag}"
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": _LIST_TYPE})
    try:
        with _OPENER.open(request, timeout=30) as response:
            return str(response.headers["Docker-Content-Digest"])
    except OSError as exc:
        raise DevclusterError(f"the registry at {url} did not answer: {exc}") from exc


@contextlib.contextmanager
def image_cache_lock() -> Iterator[None]:
    """One builder at a time in the machine-wide image cache (clusters side by side)."""
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(IMAGE_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
