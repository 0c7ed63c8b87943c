"""``make demo``: the tutorial's section-5 command against the local dev cluster.

Brings the dev cluster up (idempotent), runs the parallel train + eval
workflow with the tutorial's arguments, and shows where the artifacts are.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from slurm import devcluster


def main() -> int:
    status = devcluster.up()
    print(f"Dev cluster up: partitions {', '.join(status.partitions)}", flush=True)
    command = [
        sys.executable,
        "-m",
        "slurm.examples.parallel_train_eval.workflow",
        "--hostname",
        status.ssh.alias,
        "--username",
        status.ssh.username,
        "--partition",
        "debug",
        "--epochs",
        "3",
        "--epoch-steps",
        "10",
        "--steps-per-job-cap",
        "4",
    ]
    print("$ " + shlex.join(command), flush=True)
    completed = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 (argv list)
    sys.stdout.write(completed.stdout)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        return completed.returncode
    state_line = next(line for line in completed.stdout.splitlines() if "state.json" in line)
    state_path = Path(state_line.split()[-1])
    shared = state_path.parent
    print("\nArtifacts:")
    for path in sorted(shared.rglob("*.json")):
        print(f"  {path}")
    print(f"\n$ cat {shared / 'metrics' / 'epoch_000.json'}")
    print((shared / "metrics" / "epoch_000.json").read_text(), end="")
    state = json.loads(state_path.read_text())
    print(f"\nWorkflow job {state['workflow_job_id']}: {state['epochs']} epochs done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
