"""Which interpreter and packaging a task's jobs use: the cluster's, or the task's own."""

from __future__ import annotations

from typing import Any

import pytest

from slurm import Cluster
from slurm._client.packaging import interpreter_settings, ships_sources
from slurm.errors import ConfigurationError

CASES: list[tuple[str, dict[str, Any], Any, Any, tuple[str | None, str, str | None]]] = [
    # id, Cluster kwargs, task python=, task packaging=, (runs as is, mode, env base)
    ("cluster-defaults", {}, None, None, (None, "auto", None)),
    ("cluster-python", {"python": "/c/py"}, None, None, ("/c/py", "auto", None)),
    ("task-python-wins", {"python": "/c/py"}, "/t/py", None, ("/t/py", "auto", None)),
    ("task-packaging-alone-wins", {"python": "/c/py"}, None, "none", (None, "none", None)),
    ("task-python-keeps-mode", {"packaging": "none"}, "/t/py", None, ("/t/py", "none", None)),
    ("python-with-wheel-is-the-env-base", {}, "/t/py", "wheel", (None, "wheel", "/t/py")),
    ("cluster-python-with-wheel", {"python": "/c/py", "packaging": "wheel"}, None, None,
     (None, "wheel", "/c/py")),
    ("task-packaging-dict", {}, None, {"type": "wheel", "python": "/b/py"},
     (None, "wheel", "/b/py")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cluster_kwargs", "python", "packaging", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_interpreter_settings(
    cluster_kwargs: dict[str, Any],
    python: Any,
    packaging: Any,
    expected: tuple[str | None, str, str | None],
) -> None:
    settings = interpreter_settings(Cluster("local", **cluster_kwargs), python, packaging)
    assert (settings.python, settings.spec.mode, settings.spec.python) == expected


def test_bad_values_are_refused() -> None:
    cluster = Cluster("local")
    with pytest.raises(ConfigurationError, match="interpreter"):
        interpreter_settings(cluster.session, 3, None)
    with pytest.raises(ConfigurationError, match="packaging="):
        interpreter_settings(cluster.session, None, "bogus")


def test_source_ships_on_every_backend_unless_packaging_none() -> None:
    ssh = Cluster("ssh", hostname="login.invalid")
    local = Cluster("local")
    assert ships_sources(ssh.session, interpreter_settings(ssh.session)) is True
    assert ships_sources(ssh.session, interpreter_settings(ssh.session, "/t/py")) is True
    assert ships_sources(ssh.session, interpreter_settings(ssh.session, None, "none")) is False
    assert ships_sources(local.session, interpreter_settings(local.session)) is True
    assert ships_sources(local.session, interpreter_settings(local.session, None, "none")) is False
