"""On this machine the preflight answers from this process what needs no program, and
finds what its shell script finds; the script itself still runs over SSH."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_packaging_preflight import _fake_bin

from slurm._client.preflight import (
    NodeCheck,
    PreflightReport,
    build_script,
    parse_output,
    run_preflight,
)
from slurm._slurm import probe
from slurm._transport import LocalTransport


def _bin(root: Path, *commands: str) -> str:
    """A PATH with these fake commands and every tool the script itself uses."""
    path = _fake_bin(root, *commands)
    for tool in ("stat", "id", "grep", "cat", "hostname"):
        found = shutil.which(tool)
        assert found is not None
        (Path(path) / tool).symlink_to(found)
    return path


def _by_script(base: str, python: str, **kw: Any) -> PreflightReport:
    """The report of the script the SSH transport runs, run here by ``sh``."""
    env = kw.pop("env")
    out = subprocess.run(
        ["sh", "-c", build_script(base, python, **kw)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    ).stdout
    return parse_output(out, where="local", base_dir=base, python=python, **kw)


def _seen(report: PreflightReport) -> dict[str, Any]:
    """What a report says, failures by name (their words come from `mkdir` or from `os`)."""
    found = report.to_dict()
    checks = {
        name: check["detail"] if check["ok"] else "failed"
        for name, check in found["checks"].items()
    }
    nodes = report.nodes
    view = None if nodes is None else (nodes.checked, nodes.missing, nodes.python_error)
    return {**found, "checks": checks, "problems": len(found["problems"]), "nodes": view}


def _cases(tmp: Path) -> dict[str, dict[str, Any]]:
    shared = tmp / "shared"
    shared.mkdir()
    (tmp / "a-file").write_text("")
    loose = tmp / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    base = str(tmp / "jobs")
    return {
        "all good": {"base": base, "python": sys.executable},
        "base under a file": {"base": str(tmp / "a-file" / "jobs"), "python": sys.executable},
        "no such python": {"base": base, "python": str(tmp / "no-such-python")},
        "a module to import": {
            "base": base,
            "python": sys.executable,
            "modules": ("slurm.runner", "no_such_module_xyz"),
        },
        "trusted dirs, one others can write": {
            "base": base,
            "python": sys.executable,
            "trusted": {"job_base_dir": base, "index": f"{base}/.index", "env_dir": str(loose)},
        },
        "nodes asked": {
            "base": base,
            "python": sys.executable,
            "nodes": NodeCheck((), {"job_base_dir": base, "env_dir": str(shared)}, sys.executable),
        },
    }


@pytest.mark.parametrize(
    "case",
    [
        "all good",
        "base under a file",
        "no such python",
        "a module to import",
        "trusted dirs, one others can write",
        "nodes asked",
    ],
)
def test_the_local_preflight_finds_what_the_script_finds(tmp_path: Path, case: str) -> None:
    one, two = tmp_path / "here", tmp_path / "script"
    reports = []
    for root in (one, two):
        root.mkdir()
        path = _bin(root, "sbatch", "squeue")  # no scontrol, no srun: both say so
        kw = _cases(root)[case]
        base, python = kw.pop("base"), kw.pop("python")
        if root is one:
            reports.append(run_preflight(LocalTransport(), base, python, env={"PATH": path}, **kw))
        else:
            reports.append(_by_script(base, python, env={"PATH": path}, **kw))
    here, script = (_seen(r) for r in reports)
    for report in (here, script):  # the two roots' own paths, made alike
        report["checks"] = {
            k: str(v).replace(str(one), "R").replace(str(two), "R")
            for k, v in report["checks"].items()
        }
    assert here == script
    assert here["checks"]["scontrol"] == "failed"


def test_a_known_cluster_on_this_machine_is_checked_without_starting_a_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This interpreter, the nodes' view remembered, no ``srun`` on the PATH: no process."""
    path = _fake_bin(tmp_path, "sbatch", "squeue", "scontrol")
    base = tmp_path / "jobs"
    base.mkdir(mode=0o700)
    (base / probe.SEEN_FILE).write_text(f"dir|{base}\npython|{sys.executable}\n")
    nodes = NodeCheck(("srun",), {"job_base_dir": str(base)}, sys.executable)
    started: list[list[str]] = []
    real = subprocess.Popen

    def count(args: list[str], *a: Any, **kw: Any) -> subprocess.Popen[bytes]:
        started.append(list(args))
        return real(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", count)
    report = run_preflight(
        LocalTransport(),
        str(base),
        sys.executable,
        env={"PATH": path},
        trusted={"job_base_dir": str(base), "index": f"{base}/.index"},
        nodes=nodes,
    )
    assert report.ok, report.to_dict()
    assert report.nodes is not None and report.nodes.cached
    assert report.python is not None and report.python.executable == sys.executable
    assert (base / ".index").is_dir() and (base / ".index").stat().st_mode & 0o077 == 0
    assert started == []
    # Without the memory the nodes are asked, in one shell.
    (base / probe.SEEN_FILE).unlink()
    run_preflight(LocalTransport(), str(base), sys.executable, env={"PATH": path}, nodes=nodes)
    assert [argv[:2] for argv in started] == [["sh", "-c"]]
