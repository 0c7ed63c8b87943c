"""Registry tags pinned to the digest they named the first time, for every runtime.

A tag is a name anyone who may push can move. The first run of a tag (pyxis's
``REGISTRY#NAME:TAG``, Apptainer's ``docker://REGISTRY/NAME:TAG``) records the digest
the registry gave it in ``ROOT/.image-cache/pins/<reference>.json``, made atomically so
that two first runs agree; later runs take the pinned digest, and a tag moved since is
logged as a warning, never taken. Both runtimes share the pin of a tag (the same
registry, name and tag are the same image). To take a moved tag: give the new digest,
or remove the pin (``slurm images unpin``, or delete the file the warning names).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._client.packaging.registry import ImageReference
    from slurm._transport.base import Transport

__all__ = ["IMAGE_CACHE_DIR", "Pin", "list_pins", "pin", "pin_name", "pinned_digest", "pins_dir"]

logger = logging.getLogger(__name__)

#: The image cache's directory under the top job base directory (the shared file system).
IMAGE_CACHE_DIR = ".image-cache"


@dataclass(frozen=True)
class Pin:
    """One pin file: the tag it pins, its digest, when it was made."""

    path: str
    reference: str
    digest: str
    pinned: float


def pins_dir(root: str) -> str:
    """The pins' directory under the top job base directory ``root``."""
    return f"{root}/{IMAGE_CACHE_DIR}/pins"


def pin_name(ref: ImageReference) -> str:
    """The pin file's name of a reference's tag: readable, and unique by a hash."""
    tagged = f"{ref.scheme}://{ref.registry}/{ref.name}:{ref.tag}"
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{ref.registry}/{ref.name}:{ref.tag}")
    return f"{readable[:80]}-{hashlib.sha256(tagged.encode()).hexdigest()[:12]}.json"


def _read(transport: Transport, path: str) -> Pin:
    record = json.loads(transport.read_text(path))
    digest = str(record["digest"])
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"{digest!r} is not a sha256 digest")
    return Pin(path, str(record.get("reference", "")), digest, float(record.get("pinned", 0)))


def pinned_digest(transport: Transport, root: str, ref: ImageReference) -> str | None:
    """The digest pinned for ``ref``'s tag, or None when there is none (or it is unreadable)."""
    try:
        return _read(transport, f"{pins_dir(root)}/{pin_name(ref)}").digest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pin(transport: Transport, root: str, current: ImageReference, spelled: str) -> ImageReference:
    """``current`` (with the digest its registry gives the tag now) with the digest pinned
    for its tag: pinned now when there is none yet. ``spelled`` is ``current`` by digest
    in the runtime's own spelling, for the warning when the tag moved.

    Raises:
        ConfigurationError: the pin file cannot be read.
    """
    directory = pins_dir(root)
    path = f"{directory}/{pin_name(current)}"
    try:
        pinned = _read(transport, path).digest
    except FileNotFoundError:
        transport.mkdir(directory, mode=0o700)
        record = {"reference": current.uri, "digest": current.digest, "pinned": time.time()}
        tmp = f"{path}.tmp-{secrets.token_hex(4)}"
        transport.write_text(tmp, json.dumps(record, sort_keys=True) + "\n")
        made = transport.run(["ln", "-T", "--", tmp, path], check=False)  # fails if there
        transport.run(["rm", "-f", "--", tmp], check=False)
        if made.returncode == 0:
            logger.info("pinned %s to %s (%s)", current.uri.split("@")[0], current.digest, path)
            return current
        pinned = _read(transport, path).digest
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"container_image {current.uri!r}: its pin file {path} cannot be read ({exc}). "
            "Nothing was submitted. Delete it to pin the tag's current digest again."
        ) from exc
    if pinned != current.digest:
        logger.warning(
            "the tag %s moved in its registry (now %s); running the pinned %s. To take the "
            "new image, give container_image='%s' or run `slurm images unpin %s`",
            current.uri.split("@")[0],
            current.digest,
            pinned,
            spelled,
            path,
        )
    return replace(current, digest=pinned)


def list_pins(transport: Transport, root: str) -> list[Pin]:
    """The pins under ``root``, oldest first (an unreadable file is listed without a digest)."""
    directory = pins_dir(root)
    if not transport.exists(directory):
        return []
    pins = []
    for name in transport.list_dir(directory):
        if not name.endswith(".json"):
            continue
        try:
            pins.append(_read(transport, f"{directory}/{name}"))
        except (OSError, ValueError, KeyError, TypeError):
            pins.append(Pin(f"{directory}/{name}", "", "", 0.0))
    return sorted(pins, key=lambda p: (p.pinned, p.path))
