"""``packaging={"python_version": "3.X"}``: the key read, and that Python found or installed.

The resolution script runs for real here, in ``sh`` on this machine, against a
``PATH`` of stand-ins: a ``python3.X`` that answers with a version, and a ``uv``
that finds or installs one the way uv does (into ``UV_PYTHON_INSTALL_DIR``).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from slurm import Cluster
from slurm._client import packaging
from slurm._client.packaging import interpreter_settings, parse_spec, pythons
from slurm._client.packaging.pythons import FoundPython, find_python
from slurm._transport.local import LocalTransport
from slurm.errors import ConfigurationError

# --- the key ---------------------------------------------------------------------------------


def test_python_version_is_kept_as_a_request_with_the_env_for_uv() -> None:
    spec = parse_spec(
        {"python_version": "3.12", "env": {"UV_PYTHON_INSTALL_MIRROR": "file:///m", "A": "1"}}
    )
    assert (spec.python_version, spec.python) == ("3.12", None)
    assert spec.env == (("A", "1"), ("UV_PYTHON_INSTALL_MIRROR", "file:///m"))
    assert parse_spec({"python_version": "3.12.4"}).python_version == "3.12.4"
    assert parse_spec({"python_version": "3.12"}) != parse_spec({"python_version": "3.13"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"python_version": "three"}, "a version such as '3.12'"),
        ({"python_version": "3"}, "a version such as '3.12'"),
        ({"python_version": "3.12t"}, "a version such as '3.12'"),
        ({"python_version": 3.10}, r"as a string: 3\.10 as a number is 3\.1"),
        ({"python_version": "3.10"}, "older than the Python 3.11 slurm-sdk needs"),
        ({"python_version": "2.7.18"}, "older than the Python 3.11"),
        ({"python_version": "3.12", "python": "/opt/py"}, "not both"),
        ({"type": "container", "python_version": "3.12"}, "choose it in the Dockerfile"),
        ({"env": {"UV MIRROR": "x"}}, "a dict of environment variable names"),
        ({"env": {"UV_OFFLINE": 1}}, "to string values"),
        ({"env": ["UV_OFFLINE=1"]}, "a dict of environment variable names"),
    ],
)
def test_bad_python_version_or_env_says_what_to_give(value: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_spec(value)


# --- where the request resolves (once per session) ---------------------------------------------


def test_this_interpreter_answers_a_request_for_its_own_version_locally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pythons, "find_python", _never)
    session = Cluster("local").session
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    settings = interpreter_settings(session, None, {"python_version": mine})
    assert packaging._plan(session, settings) == ("as-is", sys.executable, ())


def test_another_version_is_resolved_on_the_cluster_once_per_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[tuple[str, str, dict[str, str] | None]] = []

    def found(_: object, version: str, install_dir: str, env: Any = None) -> FoundPython:
        asked.append((version, install_dir, env))
        return FoundPython(f"{install_dir}/cpython/bin/python{version}", version + ".1", "install")

    monkeypatch.setattr(pythons, "find_python", found)
    session = Cluster("ssh", hostname="login.invalid", job_base_dir=str(tmp_path)).session
    one = interpreter_settings(session, None, {"python_version": "3.99"})
    other = interpreter_settings(session, None, {"python_version": "3.99", "dependencies": ["x"]})
    assert one != other
    first = packaging._plan(session, one)
    assert first == ("env", f"{tmp_path}/.envs/.python/cpython/bin/python3.99", ("ensurepip",))
    assert packaging._plan(session, other)[1] == first[1]
    assert asked == [("3.99", f"{tmp_path}/.envs/.python", {})]
    # UV_PYTHON_INSTALL_DIR in env is where uv installs it (and another request).
    mine = interpreter_settings(
        session, None, {"python_version": "3.99", "env": {"UV_PYTHON_INSTALL_DIR": "/s/py/"}}
    )
    assert packaging._plan(session, mine)[1] == "/s/py/cpython/bin/python3.99"
    assert asked[-1] == ("3.99", "/s/py", {"UV_PYTHON_INSTALL_DIR": "/s/py/"})
    none = interpreter_settings(session, None, {"type": "none", "python_version": "3.99"})
    assert packaging._plan(session, none)[0] == "as-is"
    assert len(asked) == 2


def _never(*args: object, **kwargs: object) -> FoundPython:
    raise AssertionError("nothing is looked up on the cluster for this interpreter's version")


# --- the script, run for real against stand-ins ---------------------------------------------

_PYTHON = """#!/bin/sh
{body}
"""
_UV = r"""#!/bin/sh
echo "$*" >> "$FAKE_UV_LOG"
echo "install_dir=$UV_PYTHON_INSTALL_DIR mirror=${UV_PYTHON_INSTALL_MIRROR:-}" >> "$FAKE_UV_LOG"
case "$*" in
  "python install --help") echo "  --no-bin  Do not install a Python executable" ;;
  "python find --system "*)
    p="$UV_PYTHON_INSTALL_DIR/cpython-$4/bin/python$4"
    [ -x "$p" ] && echo "$p" && exit 0
    echo "error: No interpreter found for Python $4 in managed installations" >&2; exit 2 ;;
  "python install --no-bin "*)
    if [ -n "${FAKE_UV_FAIL:-}" ]; then
      echo "error: Failed to install cpython-$4" >&2
      echo "  cause: $FAKE_UV_FAIL" >&2; exit 1
    fi
    d="$UV_PYTHON_INSTALL_DIR/cpython-$4/bin"; mkdir -p "$d"
    printf '#!/bin/sh\necho "%s.7|%s/python%s"\n' "$4" "$d" "$4" > "$d/python$4"
    chmod +x "$d/python$4" ;;
  *) echo "unexpected: $*" >&2; exit 9 ;;
esac
"""


def _tool(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, str]:
    """A PATH with only the system's tools and tmp_path/bin; HOME without a uv of its own."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "home").mkdir()
    return {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "FAKE_UV_LOG": str(tmp_path / "uv.log"),
    }


def _find(tmp_path: Path, env: dict[str, str], version: str = "3.97") -> FoundPython:
    return find_python(LocalTransport(), version, str(tmp_path / "envs" / ".python"), env)


def test_python3_x_on_the_path_that_is_that_version_is_taken(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    _tool(
        tmp_path / "bin", "python3.97", _PYTHON.format(body='echo "3.97.2|/opt/py/bin/python3.97"')
    )
    _tool(tmp_path / "bin", "uv", _UV)
    found = _find(tmp_path, stand_ins)
    assert found == FoundPython("/opt/py/bin/python3.97", "3.97.2", "path")
    assert not (tmp_path / "uv.log").exists()  # uv was not asked


def test_a_python3_x_that_fails_or_is_another_patch_is_passed_over_for_uv(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    # A pyenv shim for a version pyenv does not enable: on the PATH, but it does not run.
    _tool(
        tmp_path / "bin", "python3.97", _PYTHON.format(body='echo "pyenv: not found" >&2; exit 127')
    )
    _tool(tmp_path / "bin", "uv", _UV)
    env = {**stand_ins, "UV_PYTHON_INSTALL_MIRROR": "file:///mirror"}
    installed = _find(tmp_path, env)
    python = f"{tmp_path}/envs/.python/cpython-3.97/bin/python3.97"
    assert installed == FoundPython(python, "3.97.7", "install")
    log = (tmp_path / "uv.log").read_text()
    assert "python install --no-bin 3.97" in log  # nothing in ~/.local/bin
    assert f"install_dir={tmp_path}/envs/.python mirror=file:///mirror" in log
    assert stat.S_IMODE((tmp_path / "envs" / ".python").stat().st_mode) == 0o700
    # The next session finds it through uv (installed before), without installing again.
    assert _find(tmp_path, env) == FoundPython(python, "3.97.7", "find")
    assert log.count("python install --no-bin") == 1
    # python3.97 on the PATH is 3.97.2, but 3.97.7 is asked for: uv's, not that one.
    here = _PYTHON.format(body='echo "3.97.2|/opt/py/bin/python3.97"')
    _tool(tmp_path / "bin", "python3.97", here)
    exact = _find(tmp_path, env, "3.97.7")
    assert exact.how == "install" and exact.executable.endswith("/cpython-3.97.7/bin/python3.97.7")


def test_no_match_and_no_uv_says_what_was_tried_and_what_to_do(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _find(tmp_path, stand_ins)
    message = str(caught.value)
    assert "no Python 3.97 on local, and none could be installed; nothing was submitted" in message
    assert "python3.97 is not on the PATH of a non-interactive shell" in message
    assert "uv is not there to find or install one" in message
    assert "pip install --user uv" in message and "packaging={'python': " in message


def test_a_failed_install_quotes_uv_and_points_at_a_mirror(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    _tool(tmp_path / "bin", "uv", _UV)
    env = {**stand_ins, "FAKE_UV_FAIL": "Network connectivity is disabled"}
    with pytest.raises(ConfigurationError) as caught:
        _find(tmp_path, env)
    message = str(caught.value)
    assert f"`{tmp_path}/bin/uv python install 3.97` (into {tmp_path}/envs/.python)" in message
    assert "failed (exit 1); uv said:\n    error: Failed to install cpython-3.97\n" in message
    assert "cause: Network connectivity is disabled" in message
    assert "UV_PYTHON_INSTALL_MIRROR" in message and "UV_PYTHON_DOWNLOADS_JSON_URL" in message


def test_an_install_directory_others_can_write_is_refused_before_anything_runs(
    tmp_path: Path, stand_ins: dict[str, str]
) -> None:
    _tool(tmp_path / "bin", "uv", _UV)
    (tmp_path / "envs" / ".python").mkdir(parents=True)
    os.chmod(tmp_path / "envs" / ".python", 0o777)  # noqa: S103 (what is refused)
    with pytest.raises(ConfigurationError, match="cannot be trusted"):
        _find(tmp_path, stand_ins)


def test_the_preflight_holds_the_resolved_python_to_the_version_and_the_nodes() -> None:
    from slurm._client.preflight import Finding, PreflightReport, PythonInfo

    info = PythonInfo("/i/python3.12", "3.12.1", "linux-x86_64", "CPython", "glibc", "2.36", "/i")
    report = PreflightReport(
        "login", [Finding("python_on_nodes", False, "/i/python3.12 runs on login but not", "x")]
    )
    report.python = info
    packaging._check_asked(report, "3.12", "/i/python3.12")
    assert [f.name for f in report.problems] == ["python_on_nodes"]
    assert "UV_PYTHON_INSTALL_DIR" in report.problems[0].fix
    packaging._check_asked(report, "3.13", "/i/python3.12")
    assert report.problems[-1].name == "python_version_asked"
    assert "asks for python_version='3.13', but /i/python3.12 on login is 3.12.1" in (
        report.problems[-1].detail
    )
