"""An import failure on the cluster says what failed, where the job looked, what to change."""

from __future__ import annotations

import sys

import pytest

from slurm._api.task import FunctionRef


def test_without_shipped_source_it_says_how_to_ship(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_SDK_CODE_DIR", raising=False)
    with pytest.raises(ImportError) as caught:
        FunctionRef("no_such_module_xyz.tasks", "f").load()
    message = str(caught.value)
    assert "'no_such_module_xyz'" in message and sys.prefix in message
    assert "packaging at 'auto'" in message and "ships your code" in message


def test_with_shipped_source_it_names_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_SDK_CODE_DIR", "/jobs/.envs/.code/abc")
    with pytest.raises(ImportError) as caught:
        FunctionRef("no_such_module_xyz", "f").load()
    message = str(caught.value)
    assert "/jobs/.envs/.code/abc" in message and "import it at module level" in message
