"""The user's queue and the cluster's partitions, as the earlier SDK's dicts: argv and parsers.

``Cluster.get_queue()`` and ``Cluster.get_cluster_info()`` answer with the
keys the earlier ``slurm-sdk`` gave (``JOBID``, ``STATE``... for a queued job;
``PARTITION``, ``AVAIL``... for a partition), so code written against it reads
them unchanged. Unlike it, the queue is the user's own (``squeue --me``), never
every user's, and a command that fails raises instead of answering an empty
list. Pure: the argv is run by :class:`~slurm._slurm.client.SlurmClient`.
"""

from __future__ import annotations

__all__ = [
    "PARTITION_KEYS",
    "QUEUE_KEYS",
    "parse_partitions",
    "parse_queue",
    "queue_argv",
    "sinfo_argv",
]

#: The keys of one queued job and the squeue field of each. The name comes last: it is
#: the one free text (the line is split on ``|`` at most len - 1 times).
_QUEUE_FIELDS = (
    ("JOBID", "%i"),
    ("STATE", "%T"),
    ("USER", "%u"),
    ("START_TIME", "%S"),
    ("TIME", "%M"),
    ("TIME_LIMIT", "%l"),
    ("PARTITION", "%P"),
    ("ACCOUNT", "%a"),
    ("NODES", "%D"),
    ("NODELIST", "%N"),
    ("REASON", "%r"),
    ("NAME", "%j"),
)
QUEUE_KEYS = tuple(key for key, _ in _QUEUE_FIELDS)

#: The keys of one partition line of sinfo (one line per partition and node state) and
#: the sinfo field of each. ``CPUS`` is allocated/idle/other/total.
_PARTITION_FIELDS = (
    ("PARTITION", "%R"),
    ("AVAIL", "%a"),
    ("TIMELIMIT", "%l"),
    ("NODES", "%D"),
    ("STATE", "%T"),
    ("CPUS", "%C"),
    ("DEFAULT", "%P"),
    ("NODELIST", "%N"),
)
PARTITION_KEYS = tuple(key for key, _ in _PARTITION_FIELDS)


def queue_argv() -> list[str]:
    """squeue of the user's own jobs, one ``|``-separated line each (no header)."""
    fields = "|".join(code for _, code in _QUEUE_FIELDS)
    return ["squeue", "--me", "--noheader", f"--format={fields}"]


def parse_queue(stdout: str) -> list[dict[str, str]]:
    """The lines of :func:`queue_argv` as dicts keyed by :data:`QUEUE_KEYS`.

    Example::

        >>> line = "12|RUNNING|ann|2026-12-01T10:00:00|0:05|5:00|debug|acct|1|node1|None|a|b"
        >>> parse_queue(line)[0]["NAME"]
        'a|b'
    """
    rows = []
    for line in stdout.splitlines():
        fields = line.strip().split("|", len(_QUEUE_FIELDS) - 1)
        if len(fields) == len(_QUEUE_FIELDS) and fields[0]:
            rows.append(dict(zip(QUEUE_KEYS, (f.strip() for f in fields), strict=True)))
    return rows


def sinfo_argv() -> list[str]:
    """sinfo of every partition, one ``|``-separated line per partition and node state."""
    fields = "|".join(code for _, code in _PARTITION_FIELDS)
    return ["sinfo", "--noheader", f"--format={fields}"]


def parse_partitions(stdout: str) -> list[dict[str, str]]:
    """The lines of :func:`sinfo_argv` as dicts keyed by :data:`PARTITION_KEYS`;
    ``DEFAULT`` is ``"yes"`` for the default partition, else ``"no"``.

    Example::

        >>> parse_partitions("debug|up|1:00:00|2|idle|0/8/0/8|debug*|node[1-2]")[0]["DEFAULT"]
        'yes'
    """
    rows = []
    for line in stdout.splitlines():
        fields = [f.strip() for f in line.strip().split("|")]
        if len(fields) != len(_PARTITION_FIELDS) or not fields[0]:
            continue
        row = dict(zip(PARTITION_KEYS, fields, strict=True))
        row["DEFAULT"] = "yes" if row["DEFAULT"].endswith("*") else "no"
        rows.append(row)
    return rows
