"""Run the tutorial's section-5 command as a user would, and find its state file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TUTORIAL_ARGS = ("--epochs", "3", "--epoch-steps", "10", "--steps-per-job-cap", "4")


def run_tutorial(cwd: Path, *cluster_args: str, timeout: float = 300) -> tuple[str, Path]:
    """``python -m slurm.examples.parallel_train_eval.workflow ARGS --epochs 3 ...``.

    Returns its stdout and the ``state.json`` path it printed; fails on a non-zero exit.
    """
    cmd = [
        sys.executable,
        "-m",
        "slurm.examples.parallel_train_eval.workflow",
        *cluster_args,
        *TUTORIAL_ARGS,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    state_line = [line for line in out.stdout.splitlines() if "state.json" in line]
    assert state_line, out.stdout
    return out.stdout, Path(state_line[0].split()[-1])
