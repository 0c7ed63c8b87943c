"""Every module of the package imports, on its own, in a fresh interpreter.

The job's start path keeps type-only names under ``TYPE_CHECKING`` (issue 27):
mypy and ruff read those blocks as if they ran, so a module that imports such a
name at run time (a Protocol it subclasses, say) passes both and fails only
when it is imported. This finds it for every module, whether or not another
test imports it.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import slurm

_PROBE = """
import importlib, sys, traceback
failed = []
for name in sys.stdin.read().split():
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + "\\n" + traceback.format_exc(limit=3))
print("\\n\\n".join(failed))
"""


def test_every_module_imports_by_itself() -> None:
    names = [
        m.name
        for m in pkgutil.walk_packages(slurm.__path__, "slurm.")
        if not m.name.endswith(".__main__")  # a __main__ runs its command
    ]
    assert len(names) > 100
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        input="\n".join(names), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert not done.stdout.strip(), f"modules that do not import:\n{done.stdout}"
