"""The probe of what the compute nodes see: its srun, its script (run here, in place of a
node) and its parser, table-driven with the lines the dev cluster's nodes printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
