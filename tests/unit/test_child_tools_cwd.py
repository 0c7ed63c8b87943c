"""The cluster-side tools the SDK starts never pick up modules or config from the
working directory they were started in (a planted ``platform.py``, ``venv.py``,
``uv.toml``): each check runs the real script from a directory holding the plants."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slurm._client.packaging.remote import create_script
from slurm._client.preflight import run_preflight
from slurm._transport.local import LocalTransport


def _plant(where: Path, *modules: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for name in modules:
        (where / f"{name}.py").write_text(
            "import pathlib\n"
            f"pathlib.Path(__file__).with_name('{name}.IMPORTED').touch()\n"
            f"raise SystemExit('planted {name}.py ran')\n"
        )
    return where


def test_the_preflight_probe_runs_no_module_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stray = _plant(tmp_path / "stray", "platform", "sysconfig")
    monkeypatch.chdir(stray)
    report = run_preflight(LocalTransport(), str(tmp_path / "base"), sys.executable)
    assert report.python is not None and report.python.version.startswith("3.")
    assert sorted(p.name for p in stray.glob("*.IMPORTED")) == []


def test_a_relative_interpreter_still_names_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "py").symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    report = run_preflight(LocalTransport(), str(tmp_path / "base"), "bin/py")
    assert report.python is not None


def test_the_environment_is_built_from_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m venv`` and pip run in the environment's directory: a ``venv.py`` and a
    ``uv.toml`` where the build was started are never used."""
    stray = _plant(tmp_path / "stray", "venv", "ensurepip")
    (stray / "uv.toml").write_text("this is = not [toml\n")
    env = tmp_path / "envs" / "e1"
    env.mkdir(parents=True)
    (env / "requirements.txt").write_text("")
    (env / "constraints.txt").write_text("")
    monkeypatch.chdir(stray)
    done = subprocess.run(
        ["sh", "-c", create_script(str(env), sys.executable, [], None)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # The venv exists; the last check fails only because it has no slurm-sdk installed.
    assert (env / "venv" / "bin" / "python").exists(), done.stderr
    assert "No module named 'slurm'" in done.stderr
    assert sorted(p.name for p in stray.glob("*.IMPORTED")) == []
