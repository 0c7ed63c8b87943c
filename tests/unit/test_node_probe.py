"""The probe of what the compute nodes see: its srun, its script (run here, in place of a
node) and its parser, table-driven with the lines the dev cluster's nodes printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slurm._client.preflight import NodeCheck, parse_output, run_preflight
from slurm._slurm import probe
from slurm._transport.local import LocalTransport


def test_srun_asks_for_one_task_on_one_node_and_gives_up_rather_than_queue() -> None:
    assert probe.srun_argv(partition="debug", account="lab", immediate=5) == [
        "srun",
        "--nodes=1",
        "--ntasks=1",
        "--time=1",
        "--immediate=5",
        "--chdir=/",
        "--job-name=slurm-sdk-probe",
        "--quiet",
        "--input=none",
        "--partition=debug",
        "--account=lab",
    ]
    assert not any(a.startswith("--qos") for a in probe.srun_argv())


def _run(base: Path, dirs: list[str], python: str, modules: tuple[str, ...] = ()) -> str:
    # No srun prefix: the node's part runs right here, as on a node that shares everything.
    script = probe.build_script(str(base), dirs, python, modules=modules, srun=())
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_a_node_that_shares_the_directories_sees_the_tokens_and_it_is_remembered(
    tmp_path: Path,
) -> None:
    base = tmp_path / "base dir; echo x"  # quoted all the way through
    envs = tmp_path / "envs"
    base.mkdir()
    envs.mkdir()
    dirs = [str(base), str(envs)]
    out = _run(base, dirs, sys.executable, ("json",))
    view = probe.parse_output(out, dirs, sys.executable)
    assert view.checked and view.ok and not view.cached
    assert view.dirs == dict.fromkeys(dirs, True)
    assert not list(base.glob(".seen-by-nodes.*"))  # the tokens are gone
    assert (base / probe.SEEN_FILE).read_text().splitlines() == [
        f"dir|{base}",
        f"dir|{envs}",
        f"python|{sys.executable}",
    ]
    again = probe.parse_output(_run(base, dirs, sys.executable), dirs, sys.executable)
    assert again.cached and again.ok
    # Another interpreter is not known yet: asked again.
    other = probe.parse_output(_run(base, dirs, "/no/such/python"), dirs, "/no/such/python")
    assert not other.cached and other.python_error
    assert "python|/no/such/python" not in (base / probe.SEEN_FILE).read_text()


def test_a_failed_check_is_not_remembered(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    out = _run(base, [str(base)], "/no/such/python", ("json",))
    view = probe.parse_output(out, [str(base)], "/no/such/python")
    assert view.checked and not view.ok and view.python_error
    assert not (base / probe.SEEN_FILE).exists()


NODE1 = "node1"


@pytest.mark.parametrize(
    ("stdout", "checked", "missing", "python_error"),
    [
        # What node1 of the dev cluster printed for a base directory under /tmp.
        (
            f"node|dir|missing|{NODE1}|/tmp/c21-x\nnode|python|ok|{NODE1}|\n",
            True,
            ("/tmp/c21-x",),
            None,
        ),
        # ... and for a virtual environment under /tmp.
        (
            f"node|dir|ok|{NODE1}|/tmp/c21-x\nnode|python|fail|{NODE1}|sh: 1: "
            "/tmp/venv/bin/python: not found \n",
            True,
            (),
            "sh: 1: /tmp/venv/bin/python: not found",
        ),
        # srun gave up: not checked, nothing refused.
        (
            "node|run|fail|1|srun: error: Unable to allocate resources: Invalid partition "
            "name specified \n",
            False,
            (),
            None,
        ),
        ("", False, (), None),
    ],
)
def test_parse_the_lines_a_node_printed(
    stdout: str, checked: bool, missing: tuple[str, ...], python_error: str | None
) -> None:
    view = probe.parse_output(stdout, ["/tmp/c21-x"], "/tmp/venv/bin/python")
    assert (view.checked, view.missing, view.python_error) == (checked, missing, python_error)
    if checked:
        assert view.node == NODE1
    else:
        assert view.why


def test_the_preflight_names_the_path_the_nodes_cannot_see_and_what_to_do() -> None:
    nodes = NodeCheck(("srun",), {"job_base_dir": "/tmp/c21-x"}, "/tmp/venv/bin/python")
    stdout = (
        "dir|base|ok|/tmp/c21-x\n"
        f"node|dir|missing|{NODE1}|/tmp/c21-x\n"
        f"node|python|fail|{NODE1}|sh: 1: /tmp/venv/bin/python: not found\n"
    )
    report = parse_output(
        stdout,
        where="login",
        base_dir="/tmp/c21-x",
        python="/tmp/venv/bin/python",
        commands=(),
        nodes=nodes,
    )
    problems = {f.name: f for f in report.problems}
    assert set(problems) >= {"job_base_dir_on_nodes", "python_on_nodes"}
    base = problems["job_base_dir_on_nodes"]
    assert "'/tmp/c21-x'" in base.detail and "node1" in base.detail
    assert "/tmp" in base.detail and "job_base_dir=" in base.fix
    assert "/tmp/venv/bin/python" in problems["python_on_nodes"].detail
    # A probe that could not run is said, not refused.
    report = parse_output(
        "dir|base|ok|/x\nnode|run|fail|1|no srun\n",
        where="login",
        base_dir="/x",
        python="py",
        commands=(),
        nodes=nodes,
    )
    (note,) = [f for f in report.findings if f.name == "nodes"]
    assert note.ok and "not checked" in note.detail and "no srun" in note.detail


def test_no_srun_on_the_path_means_not_checked(tmp_path: Path) -> None:
    base = tmp_path / "base"
    nodes = NodeCheck(("/no/such/srun",), {"job_base_dir": str(base)}, sys.executable)
    report = run_preflight(LocalTransport(), str(base), sys.executable, commands=(), nodes=nodes)
    assert report.nodes is not None and not report.nodes.checked
    assert not [f for f in report.problems if f.name.endswith("_on_nodes")]


# --- a new base directory beside one the nodes saw: the user's registry --------------------
#: An srun that never reaches a node: a probe that ran says ``node|run|fail``.
NO_NODE = ("false",)


def _ask(base: Path, srun: tuple[str, ...] = (), python: str = sys.executable) -> probe.NodeView:
    dirs = [str(base), str(base / ".envs")]
    script = probe.build_script(str(base), dirs, python, srun=srun, remember=True)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    return probe.parse_output(out, dirs, python)


def _fresh(parent: Path, name: str) -> Path:
    base = parent / name
    (base / ".envs").mkdir(parents=True)
    return base


def _registry() -> Path:
    return Path(os.environ["SLURM_SDK_SEEN_BY_NODES"])  # each test's own (tests/conftest.py)


def test_a_new_base_dir_beside_one_the_nodes_saw_needs_no_srun(tmp_path: Path) -> None:
    first = _ask(_fresh(tmp_path, "run-1"))
    assert first.checked and first.ok and not first.cached
    host = os.uname().nodename
    dev = os.stat(tmp_path).st_dev
    assert _registry().read_text().splitlines() == [
        f"{host}|near|{dev}|{tmp_path}",
        f"{host}|python|{sys.executable}",
    ]
    assert not list(tmp_path.glob(".seen-by-nodes.*"))  # the parent's token is gone too
    # Beside it, and deeper below the same parent: answered without a node.
    for base in (_fresh(tmp_path, "run-2"), _fresh(tmp_path / "group", "run-3")):
        view = _ask(base, NO_NODE)
        assert view.checked and view.ok and view.cached
        assert (base / probe.SEEN_FILE).read_text().splitlines() == [
            f"dir|{base}",
            f"dir|{base / '.envs'}",
            f"python|{sys.executable}",
        ]
    # Another interpreter was never seen to start there: asked (and here, not answered).
    assert not _ask(_fresh(tmp_path, "run-4"), NO_NODE, python="/no/such/python").checked


@pytest.mark.parametrize(
    "edit",
    [
        lambda host, dev, path: f"{host}|near|{dev + 1}|{path}",  # another filesystem now
        lambda host, dev, path: f"other-{host}|near|{dev}|{path}",  # another login host
        lambda host, dev, path: f"{host}|near|{dev}|{path}/elsewhere",  # not its parent
    ],
    ids=["device", "host", "path"],
)
def test_a_remembered_directory_answers_only_for_its_own_filesystem_and_login_host(
    tmp_path: Path, edit: Any
) -> None:
    _ask(_fresh(tmp_path, "run-1"))
    line = edit(os.uname().nodename, os.stat(tmp_path).st_dev, tmp_path)
    python = next(x for x in _registry().read_text().splitlines() if "|python|" in x)
    _registry().write_text(f"{line}\n{python}\n")
    view = _ask(_fresh(tmp_path, "run-2"), NO_NODE)
    assert not view.checked and "srun exited" in view.why  # asked a node, as before


def test_a_parent_the_node_cannot_see_is_not_remembered(tmp_path: Path) -> None:
    # A node where the parent is another directory (its own /tmp): its token is not there.
    hide = ("sh", "-c", f'rm -f -- {str(tmp_path)!r}/.seen-by-nodes.*; exec "$@"', "hide")
    view = _ask(_fresh(tmp_path, "run-1"), hide)
    assert view.checked and view.ok  # the base directory itself is seen: nothing refused
    assert "|near|" not in _registry().read_text()
    assert not _ask(_fresh(tmp_path, "run-2"), NO_NODE).checked  # so the next one is asked


def test_the_registry_lives_in_the_users_cache_and_stays_small(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_SDK_SEEN_BY_NODES"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    registry = tmp_path / "cache" / "slurm-sdk" / "seen-by-nodes"
    registry.parent.mkdir(parents=True)
    registry.write_text("".join(f"old|near|1|/x{i}\n" for i in range(300)))
    base = _fresh(tmp_path, "run-1")
    dirs = [str(base)]
    script = probe.build_script(str(base), dirs, "", remember=True)
    subprocess.run(["sh", "-c", script], env=env, check=True, capture_output=True)
    lines = registry.read_text().splitlines()
    assert len(lines) <= 128 and lines[-1].endswith(f"|near|{os.stat(tmp_path).st_dev}|{tmp_path}")
    assert registry.stat().st_mode & 0o077 == 0
