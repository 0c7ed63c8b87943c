"""``extra_index_url`` reaches the cluster's install (issue 23): an environment created on
the dev cluster's login node, over SSH, installs a package that only a local index
(``file://``, made here from a wheel this test writes) holds. No network: the offline
install lacks the package, and the install from the index finds it in that index first."""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import pytest

from slurm._client.packaging.remote import create_script
from slurm._client.packaging.wheels import find_uv
from slurm._transport.ssh import SSHTransport
from slurm.devcluster import Status
from slurm.errors import ConfigurationError

_NAME, _VERSION = "b23-index-demo", "1.0"
_MODULE = "b23_index_demo"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(directory: Path) -> Path:
    """A pure wheel of ``b23-index-demo`` whose module holds ``VALUE``."""
    info = f"{_MODULE}-{_VERSION}.dist-info"
    files = {
        f"{_MODULE}/__init__.py": b'VALUE = "from the extra index"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {_NAME}\nVersion: {_VERSION}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / f"{_MODULE}-{_VERSION}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


def simple_index(root: Path) -> str:
    """A PEP 503 index in ``root/simple`` holding the wheel; its ``file://`` URL."""
    root.mkdir(parents=True, exist_ok=True)
    wheel = write_wheel(root)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    project = root / "simple" / _NAME
    project.mkdir(parents=True)
    (root / "simple" / "index.html").write_text(f'<a href="{_NAME}/">{_NAME}</a>\n')
    (project / "index.html").write_text(
        f'<a href="../../{wheel.name}#sha256={digest}">{wheel.name}</a>\n'
    )
    return f"file://{root}/simple"


def test_the_install_from_the_index_asks_the_extra_index(
    devcluster: Status, tmp_path: Path
) -> None:
    try:
        uv = find_uv()
    except ConfigurationError as exc:
        pytest.fail(f"uv is needed to create environments: {exc}", pytrace=False)
    url = simple_index(tmp_path / "index")
    env_dir = str(tmp_path / "env")
    transport = SSHTransport(devcluster.ssh.alias, username=devcluster.ssh.username)
    try:
        transport.mkdir(env_dir, mode=0o700)
        transport.write_text(f"{env_dir}/requirements.txt", f"{_NAME}\n")
        transport.write_text(f"{env_dir}/constraints.txt", "")
        check = f"import {_MODULE}; print({_MODULE}.VALUE)"
        script = create_script(env_dir, sys.executable, [], uv, [url], check=check)
        result = transport.run(["sh", "-c", script], check=False, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "from the extra index" in result.stdout
        assert result.stdout.strip().endswith("install|index"), result.stdout
        assert f"--extra-index-url {url}" in script
    finally:
        transport.close()
