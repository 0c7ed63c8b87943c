"""Slurmfile loading."""

from __future__ import annotations

import logging
import os
import pwd
from pathlib import Path

import pytest

from slurm import Cluster
from slurm._client.config import load_environment
from slurm.errors import ConfigurationError, InvalidOptionError, SlurmfileNotFoundError

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


def test_cluster_list_and_show_commands(slurmfile: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from slurm.cli import main

    runner = CliRunner()
    listed = runner.invoke(main, ["cluster", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "ssh alice@login.example.org:2222" in listed.output and "debug" in listed.output
    shown = runner.invoke(main, ["cluster", "show", "remote"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "login.example.org" in shown.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[default]\nport = "22"\n[ok]\nbackend = "local"\n')
    listed = runner.invoke(main, ["cluster", "list", "--file", str(bad)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "whole number" in listed.output
    shown = runner.invoke(main, ["cluster", "show", "default", "--file", str(bad)])
    assert shown.exit_code == 1 and "port must be a whole number" in shown.output


def test_slurmfile_values_are_type_checked(tmp_path: Path) -> None:
    bad = tmp_path / "Slurmfile.toml"
    bad.write_text('[default]\nbackend = "ssh"\nhostname = "h"\naccept_new_host_key = "false"\n')
    with pytest.raises(ConfigurationError, match="accept_new_host_key must be true or false"):
        Cluster.from_file(str(bad))
    bad.write_text('[default]\npassword = "secret"\n')
    with pytest.raises(ConfigurationError, match="unknown setting 'password'"):
        Cluster.from_file(str(bad))


def test_every_setting_is_a_keyword_an_option_and_a_slurmfile_key() -> None:
    import argparse
    import inspect

    from click.testing import CliRunner

    from slurm._client.settings import FIELDS, SLURMFILE_KEYS
    from slurm.cli import main

    keywords = set(inspect.signature(Cluster.__init__).parameters)
    parser = Cluster.add_argparse_args(argparse.ArgumentParser())
    flags = {flag for action in parser._actions for flag in action.option_strings}
    jobs_help = CliRunner().invoke(main, ["jobs", "list", "--help"]).output
    for field in FIELDS:
        assert field.name in keywords or field.name == "backend", field.name
        if field.flag:
            assert field.flag in flags and field.flag in jobs_help, field.flag
        if field.in_file and field.kind != "options":
            assert field.name in SLURMFILE_KEYS
    args = parser.parse_args(["--hostname", "h", "--port", "2", "--partition", "p"])
    cluster = Cluster.from_args(args)
    assert (cluster.backend_type, cluster.port, cluster.default_partition) == ("ssh", 2, "p")


# --- hardening (issue 12): bounded search, owner and mode checked, file logged ----------


def test_search_stops_at_home(tmp_path: Path) -> None:
    from slurm._client.config import search_directories

    home = tmp_path / "home"
    start = home / "proj" / "src"
    start.mkdir(parents=True)
    assert search_directories(start, home) == [start, home / "proj", home]


def test_search_stops_at_repository_root(tmp_path: Path) -> None:
    from slurm._client.config import search_directories

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    start = repo / "pkg"
    start.mkdir()
    assert search_directories(start, tmp_path / "elsewhere") == [start, repo]


def test_search_never_enters_a_directory_the_user_does_not_own(
    tmp_path: Path, intruder: pwd.struct_passwd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a directory of the user's own inside a shared one (``/tmp/work``), a Slurmfile
    a neighbour left in the shared directory is never found (nor refused: not looked at)."""
    from slurm._client.config import find_slurmfile

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    os.chown(shared, intruder.pw_uid, intruder.pw_gid)
    planted = shared / "Slurmfile"
    planted.write_text('[default]\nhostname = "elsewhere"\n')
    os.chown(planted, intruder.pw_uid, intruder.pw_gid)
    work = shared / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    monkeypatch.delenv("SLURMFILE", raising=False)
    with pytest.raises(SlurmfileNotFoundError, match="parents up to"):
        find_slurmfile()


def test_a_link_swapped_in_for_the_slurmfile_is_refused(
    tmp_path: Path, intruder: pwd.struct_passwd
) -> None:
    """The check and the read are one open without following a link: a Slurmfile replaced
    by a link to another user's file (a race in a sticky directory) is refused, although
    the link itself is the user's."""
    from slurm._client.config import load_environment

    theirs = tmp_path / "theirs.toml"
    theirs.write_text('[default]\nhostname = "elsewhere"\n')
    os.chown(theirs, intruder.pw_uid, intruder.pw_gid)
    theirs.chmod(0o644)
    link = tmp_path / "Slurmfile"
    link.symlink_to(theirs)
    with pytest.raises(ConfigurationError, match="is a symbolic link"):
        load_environment(link)


def test_slurmfile_above_the_repository_root_is_not_read(
    slurmfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (slurmfile.parent / "a" / ".git").mkdir()
    monkeypatch.setenv("HOME", str(slurmfile.parent / "nohome"))
    with pytest.raises(ConfigurationError, match=r"No Slurmfile found.*parents up to"):
        load_environment()


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_slurmfile_writable_by_others_is_refused(slurmfile: Path, mode: int) -> None:
    slurmfile.chmod(mode)
    with pytest.raises(ConfigurationError, match=r"group or other users may write it.*chmod"):
        load_environment()


def test_slurmfile_of_another_user_is_refused(slurmfile: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(slurmfile, 65534, 65534)
    with pytest.raises(ConfigurationError, match=r"owned by uid 65534, not by you"):
        load_environment()


def test_the_slurmfile_used_is_logged(slurmfile: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="slurm._client.config"):
        load_environment()
    assert f"using Slurmfile {slurmfile}, environment [default]" in caplog.text


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("accept_new_host_key", '"false"', "accept_new_host_key must be true or false"),
        ("port", '"22"', "port must be a whole number"),
        ("port", "true", "port must be a whole number"),
        ("max_array_size", "1.5", "max_array_size must be a whole number"),
        ("hostname", "7", "hostname must be a string"),
    ],
)
def test_every_slurmfile_value_is_type_checked(
    tmp_path: Path, key: str, value: str, expected: str
) -> None:
    path = tmp_path / "Slurmfile.toml"
    lines = {"backend": '"ssh"', "hostname": '"h"', key: value}
    path.write_text("[default]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items()))
    with pytest.raises(ConfigurationError, match=expected):
        load_environment(path)


def test_password_is_not_a_command_line_option(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from click.testing import CliRunner

    from slurm._client.settings import PASSWORD_VARIABLE, add_argparse_args, settings_from_namespace
    from slurm.cli import main

    parser = add_argparse_args(argparse.ArgumentParser())
    with pytest.raises(SystemExit):
        parser.parse_args(["--password", "hunter2"])
    result = CliRunner().invoke(main, ["jobs", "list", "--password", "hunter2"])
    assert result.exit_code == 2 and "--password is not accepted" in result.output
    assert "$SLURM_SDK_PASSWORD" in result.output and "hunter2" not in result.output
    monkeypatch.setenv(PASSWORD_VARIABLE, "hunter2")
    assert settings_from_namespace(vars(parser.parse_args(["--hostname", "h"]))) == {
        "hostname": "h",
        "password": "hunter2",
    }
    assert "hunter2" not in repr(Cluster("ssh", hostname="h", password="hunter2").settings)


def test_one_answer_for_the_backend_whichever_way_a_cluster_is_made(tmp_path: Path) -> None:
    """A hostname alone means ssh: as keyword, command-line option or Slurmfile key."""
    import argparse

    from slurm._client.settings import choose_backend

    slurmfile = tmp_path / "Slurmfile"
    slurmfile.write_text('[default]\nhostname = "login.example.org"\n')
    parser = Cluster.add_argparse_args(argparse.ArgumentParser())
    made = [
        Cluster(hostname="login.example.org"),
        Cluster.from_args(parser.parse_args(["--hostname", "login.example.org"])),
        Cluster.from_file(str(slurmfile)),
    ]
    assert [c.backend_type for c in made] == ["ssh", "ssh", "ssh"]
    assert Cluster().backend_type == "local" == choose_backend(None, None)
    assert choose_backend("LOCAL", "login.example.org") == "local"
    with pytest.raises(ConfigurationError, match="Unknown backend 'slurm'"):
        Cluster("slurm")
