"""Tags pinned to their first digest, on a real directory through the local transport."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from slurm._client.packaging.pins import list_pins, pin, pin_name, pinned_digest, pins_dir
from slurm._client.packaging.registry import ImageReference
from slurm._transport.local import LocalTransport
from slurm.errors import ConfigurationError

ONE, TWO = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_the_first_digest_of_a_tag_is_pinned_and_a_moved_tag_is_not_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transport, root = LocalTransport(), str(tmp_path)
    tag = ImageReference("r:5000", "team/img", "v1")
    assert pinned_digest(transport, root, tag) is None and list_pins(transport, root) == []
    assert (
        pin(transport, root, ImageReference("r:5000", "team/img", "v1", ONE), "new").digest == ONE
    )
    assert pinned_digest(transport, root, tag) == ONE
    caplog.set_level(logging.WARNING)
    moved = pin(
        transport, root, ImageReference("r:5000", "team/img", "v1", TWO), "r:5000#team/img@X"
    )
    assert moved == ImageReference("r:5000", "team/img", "v1", ONE)
    assert "moved in its registry (now " + TWO in caplog.text
    assert "container_image='r:5000#team/img@X'" in caplog.text
    # Another tag is another pin; the directory is the user's alone.
    pin(transport, root, ImageReference("r:5000", "team/img", "v2", TWO), "x")
    pins = list_pins(transport, root)
    assert [(p.reference, p.digest) for p in pins] == [
        ("docker://r:5000/team/img:v1@" + ONE, ONE),
        ("docker://r:5000/team/img:v2@" + TWO, TWO),
    ]
    assert Path(pins_dir(root)).stat().st_mode & 0o077 == 0
    assert pins[0].path == f"{pins_dir(root)}/{pin_name(tag)}"


def test_first_runs_at_once_agree_on_one_pin(tmp_path: Path) -> None:
    transport, root = LocalTransport(), str(tmp_path)
    digests = ["sha256:" + f"{i:x}" * 64 for i in range(8)]
    got: list[str | None] = []

    def first(digest: str) -> None:
        ref = ImageReference("r:5000", "img", "t", digest)
        got.append(pin(transport, root, ref, "x").digest)

    threads = [threading.Thread(target=first, args=(d,)) for d in digests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 1 and got[0] in digests
    assert [p.digest for p in list_pins(transport, root)] == [got[0]]


def test_a_broken_pin_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    transport, root = LocalTransport(), str(tmp_path)
    ref = ImageReference("r:5000", "img", "t", ONE)
    Path(pins_dir(root)).mkdir(parents=True)
    Path(pins_dir(root), pin_name(ref)).write_text('{"digest": "sha256:short"}')
    with pytest.raises(ConfigurationError, match=r"cannot be read .* Delete it"):
        pin(transport, root, ref, "x")
    assert pinned_digest(transport, root, ref) is None
    assert [p.digest for p in list_pins(transport, root)] == [""]


def test_the_sif_cache_is_listed_least_recently_used_first(tmp_path: Path) -> None:
    import os

    from slurm._client.packaging.sif import cached

    sif = tmp_path / ".image-cache" / "sif"
    sif.mkdir(parents=True)
    for byte, when in (("1", 2000.0), ("2", 1000.0)):
        (sif / f"docker-sha256-{byte * 64}.sif").write_bytes(b"x" * 2048)
        os.utime(sif / f"docker-sha256-{byte * 64}.sif", (when, when))
    (sif / f"docker-sha256-{'3' * 64}.sif.tmp-ab").write_bytes(b"partial")
    (sif / f"docker-sha256-{'1' * 64}.sif.lock").mkdir()
    images = cached(LocalTransport(), str(tmp_path))
    assert [(i.digest, i.size, i.used) for i in images] == [
        (TWO, 2048, 1000.0),
        (ONE, 2048, 2000.0),
    ]
    assert cached(LocalTransport(), str(tmp_path / "none")) == []


def test_images_list_renders_pins_and_the_tags_of_each_sif() -> None:
    from slurm.cli.images import list_lines
    from slurm.inspect import CachedImage, Pin, tag_reference

    pins = [
        Pin("/b/.image-cache/pins/a.json", f"docker://r:1/img:v1@{ONE}", ONE, 1.7e9),
        Pin("/b/.image-cache/pins/b.json", "", "", 0.0),
    ]
    sifs = [CachedImage(f"/b/.image-cache/sif/docker-sha256-{'1' * 64}.sif", 3 * 2**20, 1.7e9)]
    lines = list_lines(pins, sifs, "/b/.image-cache")
    assert lines[0].split() == ["PINNED", "TAG", "DIGEST", "PINNED"]
    assert lines[1].startswith("docker://r:1/img:v1  sha256:11111111111")
    assert "b.json" in lines[2] and "(unreadable)" in lines[2]
    assert "3.0 MB" in lines[5] and lines[5].endswith("docker://r:1/img:v1")
    assert lines[-1] == "2 pins, 1 .sif images (3.0 MB) in /b/.image-cache"
    assert list_lines([], [], "/x") == ["no pinned tags", "0 pins, 0 .sif images (0.0 MB) in /x"]
    tag = ImageReference("r:1", "team/img", "v1")
    assert (
        tag_reference("r:1#team/img:v1") == tag == tag_reference(f"docker://r:1/team/img:v1@{ONE}")
    )
    assert tag_reference("/shared/img.sif") is None and tag_reference("debian:12") is None
