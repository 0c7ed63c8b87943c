"""Preflight: every problem found in one command and reported at once; version mismatch."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from slurm._client.preflight import (
    PythonInfo,
    parse_output,
    run_preflight,
    version_mismatch,
)
from slurm._transport import LocalTransport
from slurm.errors import ConfigurationError

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _fake_bin(tmp_path: Path, *commands: str) -> str:
    """A PATH with only these fake commands and the basic tools the script needs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in commands:
        script = bin_dir / command
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
    for tool in ("sh", "mkdir", "rm", "tr", "tail"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_all_good_on_this_machine(tmp_path: Path) -> None:
    path = _fake_bin(tmp_path, "sbatch", "squeue", "scontrol")
    report = run_preflight(
        LocalTransport(), str(tmp_path / "jobs"), sys.executable, env={"PATH": path}
    )
    assert report.ok, report.to_dict()
    assert report.python is not None
    assert report.python.minor == sys.version_info[:2]
    assert (tmp_path / "jobs").is_dir()
    assert report.to_dict()["checks"]["sbatch"]["detail"].endswith("/bin/sbatch")
    report.raise_for_problems()  # nothing to raise


def test_everything_wrong_is_reported_at_once(tmp_path: Path) -> None:
    path = _fake_bin(tmp_path, "sbatch")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    report = run_preflight(
        LocalTransport(),
        str(blocker / "jobs"),
        str(tmp_path / "no-such-python"),
        env={"PATH": path},
    )
    names = [f.name for f in report.problems]
    assert names == ["squeue", "scontrol", "job_base_dir", "python"]
    with pytest.raises(ConfigurationError) as info:
        report.raise_for_problems()
    message = str(info.value)
    assert "4 problem(s)" in message and "nothing was submitted" in message
    for needle in ("`squeue`", "`scontrol`", "a-file/jobs", "no-such-python"):
        assert needle in message
    assert message.count("what to do:") == 4
    as_dict = report.to_dict()
    assert as_dict["ok"] is False and len(as_dict["problems"]) == 4


def test_missing_sdk_in_an_explicit_interpreter(tmp_path: Path) -> None:
    path = _fake_bin(tmp_path, "sbatch", "squeue", "scontrol")
    report = run_preflight(
        LocalTransport(),
        str(tmp_path / "jobs"),
        sys.executable,
        modules=("slurm.runner", "no_such_module_xyz"),
        env={"PATH": path},
    )
    assert [f.name for f in report.problems] == ["python_no_such_module_xyz"]
    assert report.python is not None
    assert report.python.modules["slurm.runner"] == "ok"


def test_hostile_base_dir_is_created_literally(tmp_path: Path) -> None:
    path = _fake_bin(tmp_path, "sbatch", "squeue", "scontrol")
    base = tmp_path / "it's $(touch pwned); `x` dir"
    report = run_preflight(LocalTransport(), str(base), sys.executable, env={"PATH": path})
    assert report.ok, report.to_dict()
    assert base.is_dir()
    assert not (Path(os.getcwd()) / "pwned").exists()
    assert list(base.iterdir()) == []  # the probe file is gone


def test_a_cluster_python_older_than_the_sdk_supports_is_named_with_what_to_do() -> None:
    def info(version: str) -> PythonInfo:
        return PythonInfo(
            "python3", version, "linux-x86_64", "CPython", "glibc", "2.31", "/usr/bin/python3"
        )

    finding = version_mismatch(info("3.9.2"), "ssh me@login:22")
    assert finding is not None and not finding.ok
    assert "3.9.2" in finding.detail and "3.11" in finding.detail
    assert "Cluster(python=" in finding.fix and "packaging=" in finding.fix
    # Another minor version the SDK runs on is no problem for the preflight.
    for version in ("3.11.2", "3.12.1", "3.13.5", "3.14.0"):
        assert version_mismatch(info(version), "x") is None


def test_a_cluster_python_of_another_supported_minor_passes_the_preflight(
    tmp_path: Path,
) -> None:
    """A fake interpreter that reports 3.13 (or 3.9): the first passes, the second fails."""
    path = _fake_bin(tmp_path, "sbatch", "squeue", "scontrol")
    for version, ok in (("3.13.5", True), ("3.9.18", False)):
        fake = tmp_path / f"python-{version}"
        fake.write_text(f"#!/bin/sh\necho '{version}|linux-x86_64|CPython|glibc|2.31|/opt/py|-'\n")
        fake.chmod(0o755)
        report = run_preflight(
            LocalTransport(), str(tmp_path / "jobs"), str(fake), env={"PATH": path}
        )
        assert report.python is not None and report.python.version == version
        if ok:
            assert not [f for f in report.problems if f.name == "python_version"]
        else:
            with pytest.raises(ConfigurationError, match=r"older than the 3\.11"):
                report.raise_for_problems()


def test_parse_output_counts_a_missing_line_as_a_failure() -> None:
    report = parse_output("cmd|sbatch|ok|/usr/bin/sbatch\n", where="x", base_dir="/b", python="p")
    assert [f.name for f in report.problems] == ["squeue", "scontrol", "job_base_dir", "python"]
    assert report.uv is None


def test_parse_output_reads_uv_and_forgives_no_venv_when_uv_is_there() -> None:
    python = "3.11.7|linux-x86_64|CPython|glibc|2.36|/usr/bin/python3|ensurepip=ModuleNotFoundError"
    lines = [
        "cmd|sbatch|ok|/s",
        "cmd|squeue|ok|/s",
        "cmd|scontrol|ok|/s",
        "dir|base|ok|/b",
        f"python|run|ok|{python}",
    ]
    without = parse_output(
        "\n".join(lines), where="x", base_dir="/b", python="python3", modules=("ensurepip",)
    )
    assert [f.name for f in without.problems] == ["python_venv"]
    assert "python3-venv" in without.problems[0].fix
    with_uv = parse_output(
        "\n".join([*lines, "tool|uv|ok|/home/me/.local/bin/uv"]),
        where="x",
        base_dir="/b",
        python="python3",
        modules=("ensurepip",),
    )
    assert with_uv.ok and with_uv.uv == "/home/me/.local/bin/uv"
    assert with_uv.python is not None and with_uv.python.libc_version == "2.36"


def test_parse_output_names_the_container_runtimes_and_never_fails_for_them() -> None:
    base = "cmd|sbatch|ok|/s\ncmd|squeue|ok|/q\ncmd|scontrol|ok|/c\ndir|base|ok|/b\n"
    python = "python|run|ok|3.11.7|linux-x86_64|CPython|glibc|2.36|/usr/bin/python3|-\n"
    both = "runtime|apptainer|ok|apptainer version 1.4.5\nruntime|pyxis|ok|srun --container-image\n"
    report = parse_output(base + python + both, where="x", base_dir="/b", python="python3")
    assert report.ok and report.runtimes == {
        "pyxis": "srun --container-image",
        "apptainer": "1.4.5",
    }
    assert report.to_dict()["runtimes"] == report.runtimes
    none = "runtime|apptainer|missing|\nruntime|pyxis|missing|\n"
    report = parse_output(base + python + none, where="x", base_dir="/b", python="python3")
    assert report.ok and report.runtimes == {}


def test_the_preflight_script_asks_for_the_runtimes_on_this_machine(tmp_path: Path) -> None:
    report = run_preflight(LocalTransport(), str(tmp_path / "jobs"), sys.executable)
    assert set(report.runtimes) <= {"pyxis", "apptainer"}
    assert ("apptainer" in report.runtimes) == bool(shutil.which("apptainer"))
