"""Slurmfile loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm import Cluster
from slurm.config import load_environment
from slurm.errors import ConfigurationError, InvalidOptionError

SLURMFILE = """
[default]
backend = "local"
job_base_dir = "/tmp/jobs"
[default.sbatch]
partition = "debug"
time = "00:10:00"

[remote]
backend = "ssh"
hostname = "login.example.org"
username = "alice"
port = 2222
"""


@pytest.fixture()
def slurmfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "Slurmfile.toml"
    path.write_text(SLURMFILE)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.delenv("SLURMFILE", raising=False)
    monkeypatch.delenv("SLURM_ENV", raising=False)
    return path


def test_found_in_a_parent_directory(slurmfile: Path) -> None:
    settings, found = load_environment()
    assert found == slurmfile
    assert settings == {
        "backend": "local",
        "job_base_dir": "/tmp/jobs",
        "default_options": {"partition": "debug", "time": "00:10:00"},
    }
    cluster = Cluster.from_env()
    assert cluster.backend_type == "local" and cluster.default_partition == "debug"


def test_environment_from_variable_and_overrides(
    slurmfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_ENV", "remote")
    cluster = Cluster.from_env(username="bob")
    assert (cluster.backend_type, cluster.hostname, cluster.port) == (
        "ssh",
        "login.example.org",
        2222,
    )
    assert cluster.username == "bob"
    assert Cluster.from_file(str(slurmfile), "default").backend_type == "local"


def test_errors_say_what_to_do(slurmfile: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no environment \[nope\].*default, remote"):
        Cluster.from_env("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('[default]\nhostnme = "x"\n')
    with pytest.raises(ConfigurationError, match="did you mean 'hostname'"):
        Cluster.from_file(str(bad))
    bad.write_text('[default]\n[default.sbatch]\npartiton = "x"\n')
    with pytest.raises(InvalidOptionError, match="partition"):
        Cluster.from_file(str(bad))
    with pytest.raises(ConfigurationError, match="does not exist"):
        Cluster.from_file(str(tmp_path / "missing.toml"))
