"""A dev cluster of a test module's own, for tests that stop or crash Slurm's daemons.

Other test sessions use the shared dev cluster at the same time, so a test that restarts
a daemon must not touch it. ``own_cluster`` brings up another one beside it, on the
session's port base + ``offset``, with its state under
``~/.local/state/slurm-sdk/<name>-<base>`` (kept between sessions, so ``up`` is quick),
and takes it down at the end. For its duration ``$SLURM_CONF`` and the
``$SLURM_SDK_DEVCLUSTER_*`` variables name that cluster, so every client and every
``slurm.devcluster`` call (``dc.up()`` without arguments included) reaches it and
nothing else.

Two sessions that both want the same own cluster (two developers running the same
module) take turns: the second waits on a lock beside the state directory rather than
restarting the cluster under the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import slurm.devcluster as dc
from slurm.devcluster import Status
from slurm.devcluster.settings import env_port_base


@contextlib.contextmanager
def own_cluster(name: str, offset: int, nodes: int, up: Callable[[], Status]) -> Iterator[Status]:
    """Bring up ``up()`` (a ``dc.up`` of the caller's layout) as cluster ``name``; down after.

    Fails the test (no skip) when the process is not root or the cluster cannot start.
    """
    if os.geteuid() != 0:
        pytest.fail("the dev cluster needs root (`slurm devcluster up` says so)", pytrace=False)
    base = env_port_base() + offset
    root = Path.home() / ".local" / "state" / "slurm-sdk"
    root.mkdir(parents=True, exist_ok=True)
    state = root / f"{name}-{base}"
    lock = os.open(root / f"{name}-{base}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session's turn ends first
        with pytest.MonkeyPatch.context() as env:
            env.setenv(dc.ENV_STATE_DIR, str(state))
            env.setenv(dc.ENV_PORT_BASE, str(base))
            env.setenv(dc.ENV_NODES, str(nodes))
            try:
                st = up()
            except Exception as exc:
                pytest.fail(f"the {name} cluster could not start: {exc}", pytrace=False)
            env.setenv("SLURM_CONF", st.slurm_conf)
            try:
                yield st
            finally:
                dc.down(state)
    finally:
        os.close(lock)  # and with it the lock
