"""A cluster's image cache as the command line sees it: the pins and the ``.sif`` files
under the top job base directory's ``.image-cache`` (see :mod:`.pins` and :mod:`.sif`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slurm._client.packaging.pins import IMAGE_CACHE_DIR, Pin, list_pins, pin_name, pins_dir
from slurm._client.packaging.registry import ImageReference, parse_reference, parse_uri
from slurm._client.packaging.sif import CachedImage, cached
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = ["ImageCache", "tag_reference"]


def tag_reference(text: str) -> ImageReference | None:
    """A tag as the user names it: pyxis's ``REGISTRY#NAME:TAG`` or Apptainer's
    ``docker://REGISTRY/NAME:TAG`` (a digest, if given, is ignored), else None."""
    ref = parse_reference(text) if "#" in text else parse_uri(text)
    return None if ref is None else ImageReference(ref.registry, ref.name, ref.tag)


class ImageCache:
    """The pins and the cached ``.sif`` images of one cluster's job base directory."""

    def __init__(self, session: Session) -> None:
        self._transport = session.transport
        self._root = session.store.root

    @property
    def directory(self) -> str:
        """``ROOT/.image-cache``."""
        return f"{self._root}/{IMAGE_CACHE_DIR}"

    def pins(self) -> list[Pin]:
        """The pinned tags, oldest first."""
        return list_pins(self._transport, self._root)

    def images(self) -> list[CachedImage]:
        """The ``.sif`` files, least recently used first."""
        return cached(self._transport, self._root)

    def unpin(self, tags: list[str]) -> list[tuple[str, bool]]:
        """Forget the pins of ``tags`` (either spelling, or a pin file's path): each with
        whether it was pinned.

        Raises:
            ConfigurationError: one is neither a tag nor a pin file here (nothing removed).
        """
        directory = pins_dir(self._root)
        paths = []
        for tag in tags:
            ref = tag_reference(tag)
            if ref is not None:
                paths.append(f"{directory}/{pin_name(ref)}")
            elif tag.startswith(f"{directory}/") and "/" not in tag[len(directory) + 1 :]:
                paths.append(tag)
            else:
                raise ConfigurationError(
                    f"{tag!r} is neither a registry tag (REGISTRY#NAME:TAG or "
                    f"docker://REGISTRY/NAME:TAG) nor a pin file in {directory}. Nothing was "
                    "unpinned. `slurm images list` shows the pinned tags."
                )
        done = []
        for tag, path in zip(tags, paths, strict=True):
            there = self._transport.exists(path)
            if there:
                self._transport.run(["rm", "-f", "--", path], check=True)
            done.append((tag, there))
        return done
