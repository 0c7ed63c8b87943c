"""Capture real Slurm command output for the parser tests (run by hand, not by pytest).

Usage, on a machine where ``sinfo`` answers (the dev cluster)::

    uv run python tests/unit/golden/capture_slurm_output.py

For another release's dev cluster (docs/devcluster.md), with its client commands first
on ``PATH``, its ``SLURM_CONF``, a job directory every node shares and an output
directory of that release's own::

    PATH=$STATE/bin:$PATH SLURM_CONF=$STATE/slurm.conf uv run python \
        tests/unit/golden/capture_slurm_output.py --out tests/unit/golden/real-24.11 \
        --work ~/.cache/slurm-sdk-capture-24.11

It submits a handful of short jobs of its own (array with pending elements,
cancelled, failed, killed by a signal, requeued, timed out, waiting on a
dependency, hostile names and output paths), runs the SDK's own argv
builders against them at interesting moments, and writes stdout/stderr under
``tests/unit/golden/real/``. It cancels only the jobs it submitted, by id.
The timeout case takes about two minutes. Job ids differ on every run, so
re-capturing means re-checking the tests' expectations too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from slurm._slurm.commands import (
    parse_sbatch_output,
    sacct_argv,
    sbatch_argv,
    scancel_argv,
    scontrol_show_config_argv,
    squeue_argv,
)
from slurm._slurm.script import render_batch_script

OUT = Path(__file__).parent / "real"
WORK = Path("/tmp/slurm-sdk-capture")


def show_job(job_id: str) -> list[str]:
    return ["scontrol", "--oneliner", "show", "job", job_id]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def save(name: str, proc: subprocess.CompletedProcess[str]) -> None:
    (OUT / f"{name}.stdout").write_text(proc.stdout)
    if proc.stderr or proc.returncode:
        (OUT / f"{name}.stderr").write_text(proc.stderr)
        (OUT / f"{name}.returncode").write_text(f"{proc.returncode}\n")
    print(f"{name}: rc={proc.returncode} {len(proc.stdout.splitlines())} lines", file=sys.stderr)


def submit(name: str, body: str, *flags: str) -> str:
    script = WORK / f"{name}.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --mem=20M\n{body}\n")
    proc = run(sbatch_argv(str(script), flags=[f"--output={WORK}/%x-%j.out", *flags]))
    if proc.returncode:
        raise SystemExit(f"sbatch failed: {proc.stderr}")
    return parse_sbatch_output(proc.stdout)


def wait_gone(job_ids: list[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        proc = run(["squeue", "--noheader", "--states=all", "--array", "--format=%T"])
        if not proc.stdout.strip():
            return
        states = run([*squeue_argv(job_ids)[:-1], "--format=%T"]).stdout.split()
        if all(s not in {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"} for s in states):
            return
        time.sleep(1)


HOSTILE_NAMES = [
    "my job; echo hi",
    'it\'s "quoted" $HOME `id` $(id)',
    "hash # inside and \\ backslash",
    "ünïcödé ✓",
]


def capture_hostile() -> None:
    """Jobs whose names and output paths need quoting; check they reach Slurm intact."""
    base = WORK / "dir with 'single' \"double\" $dollar; semi #hash `tick` ü"
    base.mkdir(parents=True, exist_ok=True)
    expected = []
    scripts = []
    for i, name in enumerate(HOSTILE_NAMES):
        script = render_batch_script(
            options={
                "job_name": name,
                "output": str(base / f"out {i} %j 100%%.txt"),
                "time": "1",
                "mem": "50M",
            },
            command=["bash", "-c", 'echo "arg=$1 name=$SLURM_JOB_NAME"', "x", "a b; $(c)"],
            env={"HOSTILE": name},
        )
        path = base / f"job {i}.sh"
        path.write_text(script)
        scripts.append(script)
        proc = run(sbatch_argv(str(path)))
        job_id = parse_sbatch_output(proc.stdout)
        expected.append(
            {"job_id": job_id, "name": name, "stdout": str(base / f"out {i} {job_id} 100%.txt")}
        )
    ids = [e["job_id"] for e in expected]
    wait_gone(ids, 60)
    for item in expected:
        item["output_text"] = Path(item["stdout"]).read_text()
    text = "".join(run(show_job(i)).stdout for i in ids)
    (OUT / "hostile_scontrol_show_job.stdout").write_text(text)
    save("hostile_squeue", run(squeue_argv(ids)))
    save("hostile_sacct", run(sacct_argv(ids)))
    (OUT / "hostile_job_1.sh").write_text(scripts[1])
    (OUT / "hostile_expected.json").write_text(
        json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    )


def capture_other() -> None:
    """Outputs read by the dev cluster, the doctor and the version checks."""
    save("sinfo_version", run(["sinfo", "-V"]))
    save("sinfo_nodes", run(["sinfo", "-h", "-N", "-o", "%N %T"]))
    save("scontrol_show_partition", run(["scontrol", "-o", "show", "partition"]))


def main() -> None:
    global OUT, WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the outputs go")
    parser.add_argument("--work", type=Path, default=WORK, help="scripts and job output")
    args = parser.parse_args()
    OUT, WORK = args.out, args.work
    OUT.mkdir(exist_ok=True)
    WORK.mkdir(exist_ok=True)
    capture_other()
    capture_hostile()
    ids: dict[str, str] = {}

    ids["timeout"] = submit("timeout", "sleep 300", "--time=1")
    ids["array"] = submit("array", "sleep 5", "--array=0-20%2")
    ids["running"] = submit("running", "sleep 30")
    ids["dependent"] = submit("dependent", "true", f"--dependency=afterok:{ids['running']}")
    ids["cancelled"] = submit("cancelled", "sleep 60")
    ids["failed"] = submit("failed", "exit 3")
    ids["signalled"] = submit("signalled", "kill -9 $$")
    ids["requeued"] = submit("requeued", "sleep 60", "--requeue")
    time.sleep(4)

    all_ids = list(ids.values())
    save("squeue_live", run(squeue_argv(all_ids)))
    save("squeue_array_compressed", run([a for a in squeue_argv([ids["array"]]) if a != "--array"]))
    save("sacct_live", run(sacct_argv(all_ids)))
    save("scontrol_show_job_array", run(show_job(ids["array"])))
    save("scontrol_show_job_running", run(show_job(ids["running"])))
    if "--only-job-state" in run(["squeue", "--help"]).stdout:  # Slurm 24.05 and later
        save(
            "squeue_only_job_state",
            run(["squeue", "--only-job-state", "--jobs", ",".join(all_ids)]),
        )

    save("scancel", run(scancel_argv([ids["cancelled"]])))
    save("scontrol_requeue", run(["scontrol", "requeue", ids["requeued"]]))
    time.sleep(2)
    save("scontrol_show_job_requeued", run(show_job(ids["requeued"])))
    save("squeue_after_cancel_requeue", run(squeue_argv(all_ids)))
    save("sacct_after_cancel_requeue", run(sacct_argv(all_ids)))
    save(
        "sacct_duplicates_requeued",
        run([*sacct_argv([ids["requeued"]]), "--duplicates"]),
    )
    save("sacct_with_steps", run([a for a in sacct_argv(all_ids) if a != "--allocations"]))
    save("squeue_invalid_id", run(squeue_argv(["999999999"])))
    save("squeue_one_invalid_one_valid", run(squeue_argv(["999999999", ids["failed"]])))
    save("scontrol_show_job_invalid", run(show_job("999999999")))
    save("scontrol_show_config", run(scontrol_show_config_argv()))

    run(scancel_argv([ids["requeued"], ids["running"]]))
    wait_gone(all_ids, 200)
    save("squeue_final", run(squeue_argv(all_ids)))
    save("sacct_final", run(sacct_argv(all_ids)))
    save("scontrol_show_job_timeout", run(show_job(ids["timeout"])))
    (OUT / "job_ids.json").write_text(json.dumps(ids, indent=2) + "\n")


if __name__ == "__main__":
    main()
