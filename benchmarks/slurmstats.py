"""The controller's own counters: ``sdiag`` (slurmctld) and ``sacctmgr show stats`` (slurmdbd).

Both print a "Remote Procedure Call statistics by message type" section; a
measurement is the difference of two snapshots. Which message types count as
the *client's* load was decided from what sdiag shows on the dev cluster:

- client commands: ``sbatch`` -> REQUEST_SUBMIT_BATCH_JOB; ``squeue -j ONE``
  -> REQUEST_FED_INFO + REQUEST_JOB_INFO_SINGLE; ``squeue -j A,B`` (or no
  ``-j``) -> REQUEST_PARTITION_INFO + REQUEST_JOB_INFO (the whole job table);
  ``scancel`` -> REQUEST_KILL_JOB; ``srun`` inside a job (submitit's default)
  -> REQUEST_JOB_STEP_CREATE and friends. ``sacct`` sends nothing to
  slurmctld: it asks slurmdbd (DBD_GET_JOBS_COND, counted separately).
- daemons' own messages, left out: slurmd/slurmstepd reporting a job's or a
  step's end, prologs, epilogs, node registration.
- the measurement itself, left out: REQUEST_STATS_INFO (``sdiag``).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

# Sent by slurmd / slurmstepd / slurmctld's agents for every job, whoever submitted it.
DAEMON_TYPES = frozenset(
    {
        "MESSAGE_EPILOG_COMPLETE",
        "MESSAGE_NODE_REGISTRATION_STATUS",
        "MESSAGE_COMPOSITE",
        "REQUEST_COMPLETE_BATCH_SCRIPT",
        "REQUEST_COMPLETE_PROLOG",
        "REQUEST_STEP_COMPLETE",
        "REQUEST_STEP_COMPLETE_AGGR",
        "REQUEST_JOB_REQUEUE",  # slurmd asking to requeue a job whose launch failed
    }
)
MEASUREMENT_TYPES = frozenset({"REQUEST_STATS_INFO"})
# None of the contenders sends these; seeing them means someone else used the cluster.
FOREIGN_TYPES = frozenset(
    {"REQUEST_PING", "REQUEST_NODE_INFO", "REQUEST_NODE_INFO_SINGLE", "REQUEST_BUILD_INFO"}
)
# slurmdbd: one query per sacct call (each also opens and closes a connection).
DBD_QUERY_TYPES = frozenset({"DBD_GET_JOBS_COND"})

_SECTION = "Remote Procedure Call statistics by message type"
_ROW = re.compile(r"^\s*([A-Z][A-Z0-9_]+)\s+\(\s*\d+\)\s+count:(\d+)", re.M)
_SINCE = re.compile(r"^Data since\s+(.*)$", re.M)


def parse_rpc_counts(text: str) -> dict[str, int]:
    """``{message type: count}`` from sdiag's or ``sacctmgr show stats``'s output."""
    if _SECTION not in text:
        return {}
    section = text.split(_SECTION, 1)[1].split("Remote Procedure Call statistics by user", 1)[0]
    return {m.group(1): int(m.group(2)) for m in _ROW.finditer(section)}


def parse_since(text: str) -> str:
    """The "Data since" line: it changes when the daemon restarts or its stats are reset."""
    match = _SINCE.search(text)
    return match.group(1).strip() if match else ""


@dataclass
class Snapshot:
    ctld: dict[str, int]
    dbd: dict[str, int]
    ctld_since: str
    dbd_since: str


@dataclass
class Delta:
    ctld: dict[str, int] = field(default_factory=dict)
    dbd: dict[str, int] = field(default_factory=dict)
    reset: bool = False  # a daemon restarted or its counters were reset in between

    @property
    def client(self) -> dict[str, int]:
        """slurmctld RPCs sent by client commands (see the module docstring)."""
        return {
            k: v
            for k, v in self.ctld.items()
            if k not in DAEMON_TYPES and k not in MEASUREMENT_TYPES and v
        }

    @property
    def client_total(self) -> int:
        return sum(self.client.values())

    @property
    def daemon_total(self) -> int:
        return sum(v for k, v in self.ctld.items() if k in DAEMON_TYPES)

    @property
    def sacct_queries(self) -> int:
        return sum(v for k, v in self.dbd.items() if k in DBD_QUERY_TYPES)

    @property
    def foreign(self) -> dict[str, int]:
        return {k: v for k, v in self.ctld.items() if k in FOREIGN_TYPES and v}


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout


def snapshot() -> Snapshot:
    ctld = _run(["sdiag"])
    dbd = _run(["sacctmgr", "show", "stats"])
    return Snapshot(
        parse_rpc_counts(ctld), parse_rpc_counts(dbd), parse_since(ctld), parse_since(dbd)
    )


def delta(before: Snapshot, after: Snapshot) -> Delta:
    ctld = {
        k: after.ctld.get(k, 0) - before.ctld.get(k, 0)
        for k in after.ctld.keys() | before.ctld.keys()
    }
    dbd = {
        k: after.dbd.get(k, 0) - before.dbd.get(k, 0) for k in after.dbd.keys() | before.dbd.keys()
    }
    reset = (
        before.ctld_since != after.ctld_since
        or before.dbd_since != after.dbd_since
        or any(v < 0 for v in ctld.values())
        or any(v < 0 for v in dbd.values())
    )
    return Delta({k: v for k, v in ctld.items() if v}, {k: v for k, v in dbd.items() if v}, reset)
