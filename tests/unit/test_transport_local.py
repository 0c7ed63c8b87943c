"""LocalTransport: every method, with hostile paths, and its errors."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

import slurm._transport
from slurm._transport import CommandResult, LocalTransport, Transport
from slurm.errors import CommandError, ConfigurationError

HOSTILE_NAMES = [
    "with space",
    "quote'single",
    'quote"double',
    "semi; echo pwned",
    "new\nline",
    "$(touch pwned)",
    "back`tick`",
    "-dash",
    "ünïcödé",
    "*",
]

_ECHO_ARGS = "import json, os, sys; print(json.dumps([sys.argv[1:], os.getcwd()]))"


@pytest.fixture
def local() -> LocalTransport:
    return LocalTransport()


def test_public_names() -> None:
    assert sorted(slurm._transport.__all__) == [
        "CommandResult",
        "LocalTransport",
        "SSHTransport",
        "Transport",
    ]
    assert issubclass(LocalTransport, Transport)


def test_kind_description_and_context_manager() -> None:
    with LocalTransport() as t:
        assert t.kind == "local"
        assert t.description == "local"
        assert "local" in repr(t)
    t.close()  # twice is fine


# -- run -----------------------------------------------------------------------


def test_run_returns_result(local: LocalTransport) -> None:
    result = local.run(["echo", "a  b"])
    assert result == CommandResult(["echo", "a  b"], 0, "a  b\n", "")


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_run_without_shell_with_hostile_args_cwd_env(
    local: LocalTransport, tmp_path: Path, value: str
) -> None:
    directory = tmp_path / value
    directory.mkdir()
    script = _ECHO_ARGS.replace("os.getcwd()", "[os.getcwd(), os.environ['V']]")
    result = local.run([sys.executable, "-c", script, value], cwd=str(directory), env={"V": value})
    assert json.loads(result.stdout) == [[value], [str(directory), value]]
    assert not (tmp_path / "pwned").exists()


def test_run_env_adds_to_environment(local: LocalTransport) -> None:
    out = local.run(["sh", "-c", 'printf "%s|%s" "$X" "$PATH"'], env={"X": "1"}).stdout
    assert out == f"1|{os.environ['PATH']}"


def test_run_input_and_stderr(local: LocalTransport) -> None:
    assert local.run(["cat"], input=b"in\x00put").stdout == "in\x00put"
    assert local.run(["cat"]).stdout == ""  # stdin is empty, not inherited
    result = local.run(["sh", "-c", "echo o; echo e >&2; exit 4"], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (4, "o\n", "e\n")


def test_run_undecodable_output_is_replaced(local: LocalTransport) -> None:
    assert local.run(["printf", "\\377ok"]).stdout == "\ufffdok"


def test_run_check_raises_with_details(local: LocalTransport) -> None:
    with pytest.raises(CommandError) as info:
        local.run(["sh", "-c", "echo out; echo boom >&2; exit 3"])
    err = info.value
    assert (err.returncode, err.stdout, err.stderr) == (3, "out\n", "boom\n")
    assert err.argv == ["sh", "-c", "echo out; echo boom >&2; exit 3"]
    assert "exit code: 3" in str(err)
    assert "boom" in str(err)


def test_run_missing_program(local: LocalTransport) -> None:
    with pytest.raises(CommandError, match="not found on this machine") as info:
        local.run(["no-such-program-xyz"], check=False)
    assert info.value.returncode == 127
    assert "PATH" in str(info.value)


def test_run_not_executable(local: LocalTransport, tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(CommandError, match="cannot be executed"):
        local.run([str(script)])


def test_run_missing_cwd(local: LocalTransport, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="working directory"):
        local.run(["true"], cwd=str(tmp_path / "missing"))


def test_run_timeout_kills_the_whole_group(local: LocalTransport) -> None:
    start = time.monotonic()
    # The grandchild `sleep` keeps stdout open: only killing the group ends it.
    with pytest.raises(CommandError, match=r"timed out after 0\.3 s") as info:
        local.run(["sh", "-c", "echo started; sleep 30 & sleep 30"], timeout=0.3)
    assert time.monotonic() - start < 5
    assert info.value.stdout == "started\n"


@pytest.mark.parametrize(
    "argv",
    [[], "echo hi", ["echo", "nul\0byte"], ["echo", 3]],
    ids=["empty", "string", "nul", "not-str"],
)
def test_run_rejects_bad_argv(local: LocalTransport, argv: object) -> None:
    with pytest.raises(ConfigurationError):
        local.run(argv)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["1X", "A-B", "A=B", "", "A B"])
def test_run_rejects_bad_env_names(local: LocalTransport, name: str) -> None:
    with pytest.raises(ConfigurationError, match="environment variable"):
        local.run(["true"], env={name: "x"})


# -- files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_files_with_hostile_names(local: LocalTransport, tmp_path: Path, name: str) -> None:
    directory = tmp_path / name / "a" / "b"
    local.mkdir(str(directory))
    local.mkdir(str(directory))
    for d in (tmp_path / name, tmp_path / name / "a", directory):
        assert d.stat().st_mode & 0o777 == 0o700
    path = str(directory / name)
    assert not local.exists(path)
    local.write_text(path, "héllo\n")
    assert local.exists(path)
    assert local.read_text(path) == "héllo\n"
    assert local.read_bytes(path) == "héllo\n".encode()
    assert local.list_dir(str(directory)) == [name]


def test_write_is_atomic_and_sets_mode(local: LocalTransport, tmp_path: Path) -> None:
    path = tmp_path / "result.pkl"
    local.write_bytes(str(path), b"first")
    assert path.stat().st_mode & 0o777 == 0o600
    local.write_bytes(str(path), b"second", mode=0o644)
    assert path.read_bytes() == b"second"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["result.pkl"]


def test_failed_write_leaves_no_temp_file(local: LocalTransport, tmp_path: Path) -> None:
    target = tmp_path / "is-a-dir"
    (target / "child").mkdir(parents=True)
    with pytest.raises(OSError):
        local.write_bytes(str(target), b"x")  # rename over a non-empty dir fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["is-a-dir"]


def test_a_temporary_name_taken_already_is_passed_over(
    local: LocalTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary names come from a counter, not a random draw: one that exists already
    (or a link planted there) is left alone, and the write takes the next."""
    import itertools

    from slurm._transport import local as module

    monkeypatch.setattr(module, "_tmp_numbers", itertools.count(7))
    taken = tmp_path / f".out.{os.getpid()}-{module._TMP_TOKEN}-7.tmp"
    taken.symlink_to(tmp_path / "elsewhere")
    local.write_bytes(str(tmp_path / "out"), b"data")
    assert (tmp_path / "out").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [taken.name, "out"]
    assert not (tmp_path / "elsewhere").exists()


def test_read_missing_raises_file_not_found(local: LocalTransport, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        local.read_bytes(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        local.read_text(str(tmp_path / "missing"))


def test_list_dir_missing_is_empty_and_sorted(local: LocalTransport, tmp_path: Path) -> None:
    assert local.list_dir(str(tmp_path / "missing")) == []
    for name in ["b", "a", "c"]:
        (tmp_path / name).touch()
    assert local.list_dir(str(tmp_path)) == ["a", "b", "c"]


def test_mkdir_over_a_file_fails(local: LocalTransport, tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    with pytest.raises(OSError):
        local.mkdir(str(tmp_path / "file" / "sub"))


def test_upload_is_atomic_with_mode(local: LocalTransport, tmp_path: Path) -> None:
    src = tmp_path / "src dir" / "pkg 'v1'.whl"
    src.parent.mkdir()
    src.write_bytes(os.urandom(300_000))
    dest_dir = tmp_path / "dest; echo"
    dest_dir.mkdir()
    local.upload(str(src), str(dest_dir / "copy"), mode=0o640)
    assert (dest_dir / "copy").read_bytes() == src.read_bytes()
    assert (dest_dir / "copy").stat().st_mode & 0o777 == 0o640
    assert local.list_dir(str(dest_dir)) == ["copy"]
    with pytest.raises(FileNotFoundError):
        local.upload(str(tmp_path / "missing"), str(dest_dir / "x"))
    assert local.list_dir(str(dest_dir)) == ["copy"]


def test_expand_path(local: LocalTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert local.expand_path("~") == "/home/someone"
    assert local.expand_path("~/a b") == "/home/someone/a b"
    assert local.expand_path("rel/x") == "/home/someone/rel/x"
    assert local.expand_path("/abs/x") == "/abs/x"
