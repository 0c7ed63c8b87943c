"""Capture ``squeue --only-job-state`` outputs (24.05 and later) for the golden tests.

Run on a dev cluster of the release, its commands first on ``PATH`` and its
``SLURM_CONF`` set (``slurm devcluster up --slurm R --state-dir DIR --port-base N``,
then ``PATH=DIR/bin:$PATH SLURM_CONF=DIR/slurm.conf``)::

    python tests/unit/golden/capture_squeue_states.py tests/unit/golden/real-R

A running job, a throttled array, a job pending on a dependency, a completed and a
failed one; the argv is the SDK's own (:func:`slurm._slurm.states.squeue_states_argv`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from slurm._slurm.states import squeue_states_argv


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _submit(*args: str) -> str:
    return _run(["sbatch", "--parsable", "-o", "/dev/null", *args]).stdout.strip().split(";")[0]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ids = {"running": _submit("--wrap", "sleep 30")}
    ids["array"] = _submit("--array=0-5%1", "--wrap", "sleep 20")
    ids["dependent"] = _submit(f"--dependency=afterok:{ids['running']}", "--wrap", "true")
    ids["completed"] = _submit("--wrap", "true")
    ids["failed"] = _submit("--wrap", "exit 3")
    time.sleep(5)
    every = list(ids.values())

    def save(name: str, result: subprocess.CompletedProcess[str]) -> None:
        (out / f"{name}.stdout").write_text(result.stdout)
        (out / f"{name}.returncode").write_text(f"{result.returncode}\n")

    save("squeue_states", _run(squeue_states_argv(every)))
    save("squeue_states_compressed", _run([a for a in squeue_states_argv(every) if a != "--array"]))
    save("squeue_states_unknown", _run(squeue_states_argv(["999999999"])))
    save("squeue_states_one_unknown", _run(squeue_states_argv(["999999999", ids["running"]])))
    (out / "squeue_states_ids.json").write_text(json.dumps(ids, indent=2) + "\n")
    _run(["scancel", *every])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
