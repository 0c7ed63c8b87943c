"""The earlier SDK's nested Slurmfile format (issue 23), read by ``Cluster.from_env``
and the ``slurm`` command as the earlier SDK's docs and tests show it."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from slurm import Cluster
from slurm._client.config import environment_names, load_environment
from slurm.callbacks import LoggerCallback
from slurm.cli import main
from slurm.errors import (
    ConfigurationError,
    SlurmfileEnvironmentNotFoundError,
    SlurmfileInvalidError,
)

# The sample of the earlier SDK's own test of from_env, plus [ENV.submit] and callbacks.
NESTED = """
[default]
callbacks = ["slurm.callbacks:LoggerCallback"]

[default.cluster]
backend = "ssh"
job_base_dir = "/var/slurm/default"

[default.cluster.backend_config]
hostname = "default.example.com"
username = "default-user"

[default.packaging]
type = "none"

[default.submit]
partition = "debug"
time = "00:10:00"

[local.cluster]
job_base_dir = "/var/slurm/local"

[local.cluster.backend_config]
hostname = "local.example.com"
port = 10022

[local.packaging]
type = "wheel"
python_version = "3.11"
"""


def _write(tmp_path: Path, text: str, name: str = "Slurmfile.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURMFILE", raising=False)
    monkeypatch.delenv("SLURM_ENV", raising=False)


def test_an_environment_is_default_merged_with_its_own_tables(tmp_path: Path) -> None:
    path = _write(tmp_path, NESTED)
    settings, found = load_environment(path, "local")
    assert found == path
    callbacks = settings.pop("callbacks")
    assert settings == {
        "backend": "ssh",
        "job_base_dir": "/var/slurm/local",
        "hostname": "local.example.com",
        "username": "default-user",
        "port": 10022,
        "packaging": {"type": "wheel", "python_version": "3.11"},
        "default_options": {"partition": "debug", "time": "00:10:00"},
    }
    assert callbacks == [{"target": "slurm.callbacks:LoggerCallback", "args": [], "kwargs": {}}]
    assert environment_names(path) == (["default", "local"], path)


def test_from_env_as_the_earlier_sdk_calls_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, NESTED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLURM_ENV", "local")
    cluster = Cluster.from_env()
    assert (cluster.backend_type, cluster.hostname, cluster.username, cluster.port) == (
        "ssh",
        "local.example.com",
        "default-user",
        10022,
    )
    assert cluster.settings.job_base_dir == "/var/slurm/local"
    assert cluster.default_partition == "debug"
    assert cluster.default_options["time"] == "00:10:00"
    assert [type(c) for c in cluster.callbacks] == [LoggerCallback]

    cluster = Cluster.from_env(str(path), env="local", overrides={"backend_config": {"port": 4242}})
    assert cluster.port == 4242
    cluster = Cluster.from_env(str(path), env="default", callbacks=[])
    assert (cluster.hostname, cluster.callbacks) == ("default.example.com", [])
    assert cluster.packaging == {"type": "none"}
    # A directory holding the Slurmfile names it too, as in the earlier SDK.
    assert Cluster.from_env(str(tmp_path), env="local").hostname == "local.example.com"


def test_the_tables_may_sit_under_tool_slurm_and_environments(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [project]
        name = "demo"

        [tool.slurm.environments.default.cluster]
        backend = "local"
        job_base_dir = "/tmp/jobs"

        [tool.slurm.environments.prod.cluster.backend_config]
        hostname = "prod.example.org"
        """,
        name="pyproject.toml",
    )
    assert environment_names(path)[0] == ["default", "prod"]
    cluster = Cluster.from_env(str(path), env="prod")
    # [default] is merged in: its backend, "local", wins over the hostname's "ssh".
    assert (cluster.backend_type, cluster.settings.job_base_dir) == ("local", "/tmp/jobs")
    assert Cluster.from_env(str(path)).backend_type == "local"


def test_mixing_the_two_formats_is_an_error_saying_which_is_which(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [default]
        hostname = "flat.example.org"
        [default.sbatch]
        partition = "debug"

        [gpu.cluster.backend_config]
        hostname = "gpu.example.org"
        """,
    )
    with pytest.raises(SlurmfileInvalidError) as raised:
        Cluster.from_env(str(path), env="gpu")
    message = str(raised.value)
    assert "'hostname', 'sbatch' belong to this SDK's flat format" in message
    assert "[ENV.cluster.backend_config]" in message and "do not mix" in message
    with pytest.raises(SlurmfileInvalidError, match="do not mix"):
        Cluster.from_env(str(path))


def test_bad_keys_are_errors_listing_the_valid_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, '[default.cluster.backend_config]\nhostnme = "h"\n')
    with pytest.raises(SlurmfileInvalidError) as raised:
        Cluster.from_env(str(path))
    assert "did you mean 'hostname'" in str(raised.value)
    assert "Valid settings: " in str(raised.value) and "username" in str(raised.value)

    path = _write(tmp_path, '[default.cluster]\nbackend = "local"\nhost = "h"\n')
    with pytest.raises(SlurmfileInvalidError, match=r"'host' in \[default.cluster\]; it takes"):
        Cluster.from_env(str(path))

    path = _write(tmp_path, "[default.cluster]\nbackend_config = 3\n")
    with pytest.raises(SlurmfileInvalidError, match="must be a table"):
        Cluster.from_env(str(path))

    local = '[default.cluster]\nbackend = "local"\n'
    path = _write(tmp_path, local + "[default.submit]\npartiton = 1\n")
    with pytest.raises(ConfigurationError, match="partition"):
        Cluster.from_env(str(path))

    path = _write(tmp_path, local + "[default.packaging]\nkind = 1\n")
    with pytest.raises(ConfigurationError, match="kind"):
        Cluster.from_env(str(path))

    path = _write(tmp_path, NESTED)
    with pytest.raises(SlurmfileEnvironmentNotFoundError, match="it has: default, local"):
        Cluster.from_env(str(path), env="prod")


def test_a_password_is_refused_and_the_earlier_ssh_options_are_ignored_aloud(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ssh = '[default.cluster]\nbackend = "ssh"\n[default.cluster.backend_config]\nhostname = "h"\n'
    path = _write(tmp_path, ssh + 'password = "secret"\n')
    with pytest.raises(SlurmfileInvalidError, match=r"SLURM_SDK_PASSWORD") as raised:
        Cluster.from_env(str(path))
    assert "secret" not in str(raised.value)
    earlier = "look_for_keys = false\nallow_agent = false\nbanner_timeout = 30\n"
    path = _write(tmp_path, ssh + earlier)
    with caplog.at_level(logging.WARNING):
        assert Cluster.from_env(str(path)).hostname == "h"
    assert "allow_agent, banner_timeout, look_for_keys ignored" in caplog.text


def test_the_flat_format_keeps_working_beside_it(tmp_path: Path) -> None:
    path = _write(tmp_path, '[default]\nbackend = "local"\n[default.packaging]\ntype = "none"\n')
    settings, _ = load_environment(path)
    assert settings == {"backend": "local", "packaging": {"type": "none"}}
    # A flat environment named "cluster" is an environment, not the nested table.
    path = _write(tmp_path, '[cluster]\nhostname = "h"\n')
    assert Cluster.from_env(str(path), env="cluster").hostname == "h"


def test_the_cli_reads_it_with_env_and_slurmfile(tmp_path: Path) -> None:
    path = _write(tmp_path, NESTED)
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    listed = runner.invoke(main, ["cluster", "list", "-f", str(path)], env=env)
    assert listed.exit_code == 0, listed.output
    assert "ssh default-user@local.example.com:10022" in listed.output
    argv = ["cluster", "show", "-e", "local", "--slurmfile", str(path)]
    shown = runner.invoke(main, argv, env=env)
    assert shown.exit_code == 0, shown.output
    assert "local.example.com" in shown.output and "sbatch partition" in shown.output
    # A command that reaches the cluster: the bad key is reported before any connection.
    bad = _write(tmp_path, '[default.cluster.backend_config]\nhostnme = "h"\n', "bad.toml")
    listed = runner.invoke(main, ["jobs", "list", "-f", str(bad), "-e", "default"], env=env)
    assert listed.exit_code != 0
    assert "did you mean 'hostname'" in listed.output
