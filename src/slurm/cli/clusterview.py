"""What ``slurm cluster watch`` and ``connect`` show and run, as pure functions.

``watch`` draws the partitions (``Cluster.get_cluster_info``: one ``sinfo``) with
their CPUs in use and the user's own jobs in each (``Cluster.get_queue``: one
``squeue --me``); ``connect`` is the ``ssh`` command line a Slurmfile environment
describes, for OpenSSH to run (it reads ``~/.ssh/config``, agents and prompts as
the user's own ``ssh`` does).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from slurm.cli.jobview import plain

__all__ = ["partition_rows", "partitions_table", "ssh_argv"]


def partition_rows(
    partitions: Sequence[Mapping[str, str]], queue: Sequence[Mapping[str, str]]
) -> list[tuple[str, str, str, int, int, int, int]]:
    """One row per partition: (name with ``*`` for the default, availability, node
    states, CPUs allocated, CPUs in all, your running jobs, your pending jobs).

    ``partitions`` are ``get_cluster_info()["partitions"]`` (one line per partition and
    node state, summed here), ``queue`` is ``get_queue()``.
    """
    order: list[str] = []
    facts: dict[str, dict[str, Any]] = {}
    for p in partitions:
        name = p["PARTITION"]
        if name not in facts:
            order.append(name)
            facts[name] = {"default": False, "avail": p["AVAIL"], "states": [], "cpus": [0, 0]}
        fact = facts[name]
        fact["default"] = fact["default"] or p.get("DEFAULT") == "yes"
        fact["states"].append(f"{p['NODES']} {p['STATE']}")
        counts = p.get("CPUS", "").split("/")
        if len(counts) == 4 and all(c.isdigit() for c in counts):
            fact["cpus"][0] += int(counts[0])
            fact["cpus"][1] += int(counts[3])
    rows = []
    for name in order:
        fact = facts[name]
        mine = [q for q in queue if q.get("PARTITION") == name]
        running = sum(1 for q in mine if q.get("STATE") == "RUNNING")
        pending = sum(1 for q in mine if q.get("STATE") == "PENDING")
        label = f"{name}*" if fact["default"] else name
        states = ", ".join(fact["states"])
        rows.append((label, fact["avail"], states, *fact["cpus"], running, pending))
    return rows


def partitions_table(
    partitions: Sequence[Mapping[str, str]],
    queue: Sequence[Mapping[str, str]],
    *,
    title: str = "",
) -> Table:
    """The partitions' use as a rich table (``*`` marks the default partition)."""
    table = Table(title=title or None, title_justify="left")
    for column in ("partition", "avail", "nodes", "CPUs in use", "your jobs"):
        table.add_column(column)
    for name, avail, states, used, total, running, pending in partition_rows(partitions, queue):
        bar_width = 10
        filled = round(bar_width * used / total) if total else 0
        bar = "█" * filled + "░" * (bar_width - filled)
        table.add_row(
            plain(name),
            plain(avail),
            plain(states),
            f"{bar} {used}/{total}",
            f"{running} running, {pending} pending",
        )
    return table


def ssh_argv(settings: Mapping[str, Any], command: Sequence[str] = ()) -> list[str]:
    """The ``ssh`` command line for these cluster settings (a Slurmfile environment's).

    ``host_key_policy="auto"`` (or ``accept_new_host_key``) becomes OpenSSH's
    ``StrictHostKeyChecking=accept-new``; a ``command`` runs instead of a shell.

    Example::

        >>> ssh_argv({"hostname": "login", "username": "ann", "port": 2222}, ["hostname"])
        ['ssh', '-p', '2222', '-l', 'ann', '--', 'login', 'hostname']
    """
    argv = ["ssh"]
    if settings.get("port"):
        argv += ["-p", str(settings["port"])]
    if settings.get("username"):
        argv += ["-l", str(settings["username"])]
    if settings.get("key_filename"):
        argv += ["-i", str(settings["key_filename"])]
    if settings.get("host_key_policy") == "auto" or settings.get("accept_new_host_key"):
        argv += ["-o", "StrictHostKeyChecking=accept-new"]
    if not command:
        argv.append("-t")
    argv += ["--", str(settings["hostname"])]
    if command:
        argv.append(shlex.join(command))  # one word: the remote shell splits it as given
    return argv
