"""Registry images for Apptainer, the pure parts: the ``docker://``/``oras://`` reference,
the names of the pin and of the cached ``.sif``, the spec recording what ran, the layer
the dev cluster's tests push."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from slurm._client.packaging.pins import pin_name
from slurm._client.packaging.registry import ImageReference, parse_uri
from slurm._client.packaging.sif import cache_name
from slurm._slurm.container import ContainerSpec
from slurm.devcluster.registry import files_layer

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "docker://10.0.0.1:5000/sdk/python:3",
            ImageReference("10.0.0.1:5000", "sdk/python", "3", None, "docker"),
        ),
        (
            "docker://ghcr.io/org/img",
            ImageReference("ghcr.io", "org/img", "latest", None, "docker"),
        ),
        (
            f"oras://localhost:5000/a/b@{DIGEST}",
            ImageReference("localhost:5000", "a/b", "latest", DIGEST, "oras"),
        ),
        (
            f"docker://host:1/x:t@{DIGEST}",
            ImageReference("host:1", "x", "t", DIGEST, "docker"),
        ),
        ("docker://debian:bookworm", None),  # Docker Hub: names no registry
        ("docker://a/b", None),
        ("/shared/images/py.sif", None),
        ("library://sylabs/x", None),
        ("docker://host:1/UPPER:t", None),
        (f"docker://host:1/x@{DIGEST[:-1]}", None),
    ],
)
def test_registry_references_are_parsed(uri: str, expected: ImageReference | None) -> None:
    assert parse_uri(uri) == expected


def test_a_reference_is_pulled_by_its_digest_and_recorded_with_its_tag() -> None:
    ref = ImageReference("10.0.0.1:5000", "sdk/python", "3", DIGEST)
    assert ref.uri == f"docker://10.0.0.1:5000/sdk/python:3@{DIGEST}"
    assert ref.pull_uri == f"docker://10.0.0.1:5000/sdk/python@{DIGEST}"
    assert ref.manifest_path == f"10.0.0.1:5000/v2/sdk/python/manifests/{DIGEST}"
    untagged = ImageReference("10.0.0.1:5000", "sdk/python", "3")
    assert untagged.pull_uri == "docker://10.0.0.1:5000/sdk/python:3"
    assert untagged.manifest_path == "10.0.0.1:5000/v2/sdk/python/manifests/3"


def test_the_cache_is_by_digest_and_the_pin_by_tag() -> None:
    a = ImageReference("10.0.0.1:5000", "sdk/python", "3", DIGEST)
    b = ImageReference("other:5000", "copy", "x", DIGEST)
    assert cache_name(a) == cache_name(b) == f"docker-sha256-{'ab' * 32}.sif"
    assert cache_name(ImageReference("h:1", "n", "t", DIGEST, "oras")).startswith("oras-")
    pin = pin_name(a)
    assert pin.startswith("10.0.0.1_5000_sdk_python_3-") and pin.endswith(".json")
    assert pin_name(ImageReference("10.0.0.1:5000", "sdk/python", "3", None)) == pin
    assert pin_name(ImageReference("10.0.0.1:5000", "sdk/python", "4")) != pin
    assert "/" not in pin_name(ImageReference("h:1", "a/b/c", "t"))


def test_the_spec_records_what_ran() -> None:
    spec = ContainerSpec(image="/c/docker-sha256-ab.sif", runtime="apptainer", source="docker://x")
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert spec.ran == "docker://x"
    assert ContainerSpec(image="/a.sif").ran == "/a.sif"
    assert ContainerSpec.from_json('{"image": "/a.sif"}').source is None  # an earlier spec


def test_a_files_layer_is_the_same_bytes_for_the_same_files() -> None:
    one = files_layer({"/etc/marker": b"one\n"})
    assert one == files_layer({"/etc/marker": b"one\n"})
    assert one[1] != files_layer({"/etc/marker": b"two\n"})[1]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(one[0]))) as tar:
        member = tar.getmember("etc/marker")
        assert tar.extractfile(member).read() == b"one\n"  # type: ignore[union-attr]
