"""``slurm images list|unpin``: the tags pinned to a digest and the ``.sif`` cache.

A registry tag a task ran by is pinned to the digest it named the first time
(:mod:`slurm._client.packaging.pins`); Apptainer's pulls are cached as ``.sif`` files
by digest (:mod:`slurm._client.packaging.sif`). Both live under the top job base
directory's ``.image-cache``. ``unpin`` lets the next run take the tag's digest as the
registry gives it then; ``slurm jobs prune --images-unused DAYS`` removes old ``.sif``
files. Rendering is pure (:func:`list_lines`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click

from slurm.cli.jobs import cluster_options, opened_cluster
from slurm.inspect import CachedImage, Pin, image_cache

__all__ = ["images", "list_lines"]


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else "?"


def list_lines(pins: Sequence[Pin], sifs: Sequence[CachedImage], directory: str) -> list[str]:
    """``slurm images list``: the pins (tag, digest, when), then the ``.sif`` files (size,
    last use, the tags pinned to their digest)."""
    lines = []
    if pins:
        width = max(len(p.reference.split("@")[0]) for p in pins)
        lines.append(f"{'PINNED TAG':<{width}}  {'DIGEST':<19}  PINNED")
        for p in pins:
            tag = p.reference.split("@")[0] or p.path.rsplit("/", 1)[-1]
            digest = p.digest[:19] if p.digest else "(unreadable)"
            lines.append(f"{tag:<{width}}  {digest:<19}  {_when(p.pinned)}")
    else:
        lines.append("no pinned tags")
    if sifs:
        lines.append("")
        lines.append(f"{'SIF IMAGE':<19}  {'SIZE':>9}  {'LAST USED':<16}  TAGS")
        for image in sifs:
            tags = ", ".join(p.reference.split("@")[0] for p in pins if p.digest == image.digest)
            size = f"{image.size / 2**20:.1f} MB"
            lines.append(f"{image.digest[:19]}  {size:>9}  {_when(image.used)}  {tags or '-'}")
    total = sum(i.size for i in sifs) / 2**20
    lines.append(f"{len(pins)} pins, {len(sifs)} .sif images ({total:.1f} MB) in {directory}")
    return lines


@click.group()
def images() -> None:
    """Container images: the tags pinned to a digest, the Apptainer .sif cache."""


@images.command("list")
@cluster_options
def list_images(**options: Any) -> None:
    """The pinned tags and the cached .sif images under the job base directory."""
    with opened_cluster(options) as cluster:
        cache = image_cache(cluster)
        click.echo("\n".join(list_lines(cache.pins(), cache.images(), cache.directory)))


@images.command()
@click.argument("tags", nargs=-1, required=True)
@cluster_options
def unpin(tags: tuple[str, ...], **options: Any) -> None:
    """Forget the digest pinned for each of TAGS (REGISTRY#NAME:TAG, docker://REGISTRY/
    NAME:TAG, or the pin file a warning named): the next run takes the digest the
    registry gives the tag then."""
    with opened_cluster(options) as cluster:
        for tag, was in image_cache(cluster).unpin(list(tags)):
            click.echo(f"unpinned {tag}" if was else f"{tag}: not pinned")
