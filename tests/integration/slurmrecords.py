"""Slurm's own records, read with sacct, for assertions about what really ran."""

from __future__ import annotations

import subprocess
import time

FIELDS = [
    "JobID",
    "JobName",
    "Partition",
    "State",
    "ExitCode",
    "Start",
    "End",
    "NCPUS",
    "NodeList",
]


def sacct(*job_ids: str) -> dict[str, dict[str, str]]:
    """Slurm's own records of these jobs (allocation rows), keyed by job id."""
    fields = FIELDS
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", ",".join(fields)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    records = {}
    for line in out.splitlines():
        values = line.split("|")
        if len(values) == len(fields):
            records[values[0]] = dict(zip(fields, values, strict=True))
    return records


def _settled(record: dict[str, str] | None) -> bool:
    # slurmdbd receives a job's records asynchronously: until then sacct shows
    # a placeholder ("allocation", no End).
    return (
        record is not None
        and record["End"] not in ("Unknown", "", "None")
        and record["JobName"] != "allocation"
        and record["State"] not in ("PENDING", "RUNNING", "REQUEUED")
    )


def wait_for_records(*job_ids: str, timeout: float = 30) -> dict[str, dict[str, str]]:
    """sacct records once every job has an End time (the database lags a little)."""
    deadline = time.monotonic() + timeout
    while True:
        records = sacct(*job_ids)
        if all(_settled(records.get(j)) for j in job_ids):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct has no complete records for {job_ids}: {records}")
        time.sleep(0.5)
