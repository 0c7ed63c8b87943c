"""A notebook defines a task and runs it on the cluster over SSH, in a real Jupyter kernel.

The notebook is a real ``.ipynb`` executed by nbclient (an IPython kernel on
this interpreter), in a directory with a helper module and no
``pyproject.toml``. Its task is defined in a cell (it travels by value) and
uses the helper module, which the SDK ships.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from slurm.devcluster import SshInfo

HELPER = '''\
"""Beside the notebook: imported by it, needed by its task on the cluster."""


def total(xs: list[int]) -> int:
    return sum(xs)
'''


def _cells(base: Path, user: str, alias: str) -> list[str]:
    return [
        "import json\nimport nbhelpers\nfrom slurm import Cluster, task",
        textwrap.dedent(
            """\
            @task(time="00:05:00", mem="256M")
            def doubled_total(xs):
                return {"value": nbhelpers.total(xs) * 2, "helper": nbhelpers.__file__}
            """
        ),
        textwrap.dedent(
            f"""\
            with Cluster(
                backend_type="ssh",
                hostname={alias!r},
                username={user!r},
                job_base_dir={str(base)!r},
                default_partition="debug",
            ):
                result = doubled_total([1, 2, 3]).get_result(timeout=240)
            print("RESULT " + json.dumps(result))
            """
        ),
    ]


def test_notebook_task_with_a_helper_module_runs_over_ssh(
    devcluster_ssh: SshInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "nbhelpers.py").write_text(HELPER)
    base = tmp_path / "jobs"
    notebook = nbformat.v4.new_notebook()
    cells = _cells(base, devcluster_ssh.username, devcluster_ssh.alias)
    notebook.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    path = folder / "analysis.ipynb"
    nbformat.write(notebook, path)
    monkeypatch.delenv("PYTHONPATH", raising=False)

    executed = nbformat.read(path, as_version=4)
    client = NotebookClient(
        executed, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()

    outputs = [o for cell in executed.cells for o in cell.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    assert lines, text
    result = json.loads(lines[-1][len("RESULT ") :])
    (code,) = sorted((base / ".envs" / ".code").iterdir())
    assert result == {"value": 12, "helper": f"{code}/nbhelpers.py"}
    assert [p.name for p in code.iterdir() if p.is_file()] == ["nbhelpers.py"]
