"""An in-memory Slurm behind a transport, for unit tests of the client's subtle paths.

It answers the commands the SDK sends (``sbatch``, ``squeue``, ``sacct``,
``scancel``, ``scontrol show config``) in the formats the real Slurm 22.05 on
the dev cluster printed (see ``golden/real``), and follows the behaviour
observed there: a job leaves squeue some time after it ended (``MinJobAge``)
and is then known only to accounting; an array is listed one line per
element; a job whose ``afterok`` dependency failed stays PENDING with reason
``DependencyNeverSatisfied``; squeue refuses an unknown id with "Invalid job
id specified". Files are real, in a temporary directory; a job "runs" only
when the test says so, through the real runner, in this process.

Faults are scripted: ``lose_next_sbatch_answer`` (the job is submitted, the
answer is lost), ``fail_next_sbatch`` (a transient or final refusal),
``crash_after_next_sbatch`` (the client dies before it reads the answer),
``squeue_down`` (the controller does not answer). Ends are scripted too:
``finish(key, "TIMEOUT")``, ``"OUT_OF_MEMORY"``, ``"PREEMPTED"``... with the
usage accounting then reports (``elapsed``, ``cpu``, ``max_rss``); sacct
without ``--allocations`` answers in the usage format (allocation row and
``.batch`` step row, as in ``golden/real/sacct_usage_single.stdout``).
"""

from __future__ import annotations

import functools
import itertools
import os
import shlex
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slurm._job.entry import run_job
from slurm._job.pack import run_pack
from slurm._transport.base import CommandResult
from slurm._transport.local import LocalTransport
from slurm._wire.env import RUNNER_ENTRY
from slurm.errors import ConnectionLostError


@dataclass
class FakeJob:
    job_id: str
    script: str
    state: str = "PENDING"
    reason: str = "None"
    exit_code: str = "0:0"
    node: str = ""
    comment: str = ""
    array_index: int | None = None
    array_id: str | None = None
    dependency: str = ""
    purged: bool = False  # gone from squeue, known to accounting only
    env: dict[str, str] = field(default_factory=dict)
    #: sbatch's options: the script's #SBATCH lines, overridden by command-line flags.
    options: dict[str, str] = field(default_factory=dict)
    elapsed: int = 0
    cpu: str = "00:00:00"
    max_rss: str = ""

    @property
    def key(self) -> str:
        return f"{self.array_id}_{self.array_index}" if self.array_id else self.job_id


# The nodes of this Slurm are this machine: its srun (the preflight's probe of what the
# nodes see, run inside the preflight's shell script) runs the command right here.
_SRUN = """#!/bin/sh
while [ "$#" -gt 0 ]; do case $1 in --*) shift ;; *) break ;; esac; done
cd / && exec "$@"
"""


@functools.cache
def _srun_dir() -> str:
    path = tempfile.mkdtemp(prefix="fakeslurm-bin-")
    srun = os.path.join(path, "srun")
    with open(srun, "w", encoding="utf-8") as handle:
        handle.write(_SRUN)
    os.chmod(srun, 0o700)
    return path


def _directives(script: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for line in script.splitlines():
        if not line.startswith("#SBATCH "):
            continue
        (word,) = shlex.split(line[len("#SBATCH ") :])
        name, _, value = word.removeprefix("--").partition("=")
        options[name] = value
    return options


def _exports(script: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in script.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0]
    return env


class FakeSlurm(LocalTransport):
    """A transport whose Slurm commands are answered from memory; files are local."""

    def __init__(
        self, *, accounting: bool = True, max_array_size: int = 1001, release: str = "22.05.8"
    ) -> None:
        super().__init__()
        self.release = release  # from 24.05 on, squeue has --only-job-state
        self.accounting = accounting
        self.max_array_size = max_array_size
        self.jobs: dict[str, FakeJob] = {}  # by key: "12" or "12_3"
        self.commands: list[list[str]] = []
        self._ids = itertools.count(100)
        self._lose_answer = 0
        self._sbatch_failures: list[tuple[int, str]] = []
        self.squeue_down = False
        self.sinfo_cpus = "0/8/0/8"  # what sinfo -o %C answers
        # How many usage answers still come without limits, as right after a job ended.
        self.partial_usage_answers = 0
        self._crash = False

    # --- scripted faults ---------------------------------------------------------------
    def lose_next_sbatch_answer(self, times: int = 1) -> None:
        self._lose_answer += times

    def crash_after_next_sbatch(self) -> None:
        """The next sbatch submits, then the client dies before it reads the answer."""
        self._crash = True

    def fail_next_sbatch(self, stderr: str, returncode: int = 1, times: int = 1) -> None:
        self._sbatch_failures += [(returncode, stderr)] * times

    # --- what happens on the nodes -----------------------------------------------------------
    def run_job(self, key: str) -> int:
        """Run a pending job (or array element) through the real runner, here."""
        job = self.jobs[key]
        assert job.state in ("PENDING", "REQUEUED"), job
        job.state, job.node = "RUNNING", "node1"
        env = {
            **job.env,  # sbatch --export=ALL,NAME=VALUE
            "SLURM_JOB_ID": job.job_id,
            "SLURM_RESTART_COUNT": job.env.get("SLURM_RESTART_COUNT", "0"),
            **_exports(job.script),
        }
        argv = shlex.split(job.script.splitlines()[-1].removeprefix("exec "))
        array = "--array" in argv
        if job.array_id is not None:
            env["SLURM_ARRAY_JOB_ID"] = job.array_id
            env["SLURM_ARRAY_TASK_ID"] = str(job.array_index)
        saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM)}
        try:
            # PYTHON -P -c 'from slurm.runner import main; ...' JOB_DIR [--array [--pack]]
            # (or -m slurm.runner JOB_DIR, as scripts of earlier versions)
            start = argv.index("slurm.runner" if "-m" in argv else RUNNER_ENTRY[1])
            job_dir = argv[start + 1]
            if "--pack" in argv:
                code = run_pack(job_dir, env=env)
            else:
                code = run_job(job_dir, env=env, array=array)
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)
        self.finish(key, "COMPLETED" if code == 0 else "FAILED", exit_code=f"{code}:0")
        return code

    def run_all(self) -> None:
        for key in [k for k, j in self.jobs.items() if j.state == "PENDING"]:
            if not self.jobs[key].dependency:
                self.run_job(key)

    def finish(
        self,
        key: str,
        state: str,
        *,
        exit_code: str = "0:0",
        reason: str = "None",
        elapsed: int = 0,
        cpu: str = "00:00:00",
        max_rss: str = "",
    ) -> None:
        """End a job without running it (killed, timed out, preempted...), with its usage."""
        job = self.jobs[key]
        job.state, job.exit_code, job.reason = state, exit_code, reason
        if elapsed or max_rss:
            job.elapsed, job.cpu, job.max_rss = elapsed, cpu, max_rss
        if state == "COMPLETED":
            return
        for other in self.jobs.values():
            ids = other.dependency.replace(",", ":").split(":")
            waits = other.dependency.startswith("afterok") and job.job_id in ids
            if other.state == "PENDING" and waits:
                other.reason = "DependencyNeverSatisfied"

    def purge(self) -> None:
        """Slurm's MinJobAge passed: ended jobs leave squeue."""
        for job in self.jobs.values():
            if job.state not in ("PENDING", "RUNNING", "REQUEUED"):
                job.purged = True

    # --- the commands ------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = True,
        retry: bool = True,
    ) -> CommandResult:
        argv = list(argv)
        while argv and argv[0] == "env":
            argv = argv[1:]
            while argv and argv[0].startswith("-u"):
                argv = argv[1:]
        handler = {
            "sbatch": self._sbatch,
            "squeue": self._squeue,
            "sacct": self._sacct,
            "scancel": self._scancel,
            "scontrol": self._scontrol,
            "sinfo": self._sinfo,
        }.get(argv[0])
        if argv[:2] == ["srun", "--help"]:  # the preflight's question: is there pyxis?
            return CommandResult(argv, 0, "Usage: srun [OPTIONS(0)...]\n", "")
        if handler is None:
            if argv[0] == "sh":  # a script that may call srun: ours
                path = f"{_srun_dir()}:{(env or {}).get('PATH', os.environ.get('PATH', ''))}"
                env = {**(env or {}), "PATH": path}
            return super().run(argv, input=input, timeout=timeout, env=env, cwd=cwd, check=check)
        self.commands.append(argv)
        code, out, err = handler(argv[1:])
        return CommandResult(argv, code, out, err)

    def calls(self, program: str) -> int:
        return sum(1 for argv in self.commands if argv[0] == program)

    def _sbatch(self, args: list[str]) -> tuple[int, str, str]:
        if self._sbatch_failures:
            code, stderr = self._sbatch_failures.pop(0)
            return code, "", f"sbatch: error: {stderr}\n"
        flags = [a for a in args[:-1] if a != "--parsable"]
        with open(args[-1], encoding="utf-8") as handle:
            script = handle.read()
        options = _directives(script)
        for flag in flags:
            name, _, value = flag.removeprefix("--").partition("=")
            options[name] = value
        job_id = str(next(self._ids))
        dependency = options.get("dependency", "")
        reason = "Dependency" if dependency else "None"
        for part in dependency.split(","):
            kind, *ids = part.split(":") if part else ("", "")
            if kind == "afterok" and any(
                j.job_id in ids and j.state not in ("PENDING", "RUNNING", "COMPLETED")
                for j in self.jobs.values()
            ):
                return 1, "", "sbatch: error: Job dependency problem\n"
        exported = options.get("export", "").split(",")
        common: dict[str, Any] = {
            "env": dict(e.split("=", 1) for e in exported if "=" in e),
            "script": script,
            "comment": options.get("comment", ""),
            "dependency": dependency,
            "reason": reason,
            "options": options,
        }
        if "array" in options:
            spec = options["array"].split("%", 1)[0]
            first, _, last = spec.partition("-")
            for index in range(int(first), int(last or first) + 1):
                element = FakeJob(
                    str(next(self._ids)), array_index=index, array_id=job_id, **common
                )
                self.jobs[element.key] = element
        else:
            self.jobs[job_id] = FakeJob(job_id, **common)
        if self._crash:
            self._crash = False
            raise KeyboardInterrupt("the client died right after sbatch (scripted)")
        if self._lose_answer:
            self._lose_answer -= 1
            raise ConnectionLostError("the connection dropped (scripted)")
        return 0, f"{job_id}\n", ""

    def _sinfo(self, args: list[str]) -> tuple[int, str, str]:
        """Only ``sinfo -h -o %C [-p P]`` (the CPUs: allocated/idle/other/total)."""
        del args
        return 0, f"{self.sinfo_cpus}\n", ""

    def _selected(self, args: list[str]) -> list[FakeJob]:
        wanted = next((a.split("=", 1)[1] for a in args if a.startswith("--jobs=")), None)
        if wanted is None:
            return list(self.jobs.values())
        ids = set(wanted.split(","))
        return [j for j in self.jobs.values() if j.key in ids or j.array_id in ids]

    def _squeue(self, args: list[str]) -> tuple[int, str, str]:
        if self.squeue_down:
            return 1, "", "squeue: error: Unable to contact slurm controller (connect failure)\n"
        if args == ["--version"]:
            return 0, f"slurm-wlm {self.release}\n", ""
        jobs = [j for j in self._selected(args) if not j.purged]
        if "--only-job-state" in args:  # as 24.11 and 26.05: states only, unknown ids no error
            if self.release < "24.05":
                return 1, "", "squeue: unrecognized option '--only-job-state'\n"
            return 0, "".join(f"{j.key}|{j.state}\n" for j in jobs), ""
        if "--format=%i|%k" in args:
            return 0, "".join(f"{j.key}|{j.comment}\n" for j in jobs), ""
        if not jobs and any(a.startswith("--jobs=") for a in args):
            return 1, "", "slurm_load_jobs error: Invalid job id specified\n"
        lines = [f"{j.key}|{j.state}|{j.node}|N/A|N/A|{j.reason}\n" for j in jobs]
        return 0, "".join(lines), ""

    def _sacct(self, args: list[str]) -> tuple[int, str, str]:
        if not self.accounting:
            return 1, "", "sacct: error: Slurm accounting storage is disabled\n"
        jobs = [j for j in self._selected(args) if j.state not in ("PENDING",)]
        if "--allocations" not in args:
            partial = self.partial_usage_answers > 0
            self.partial_usage_answers -= partial
            return 0, "".join(self._usage_rows(j, partial=partial) for j in jobs), ""
        lines = [
            f"{j.key}|{j.state}|{j.exit_code}|{j.node or 'None assigned'}|N/A|N/A|{j.reason}\n"
            for j in jobs
        ]
        return 0, "".join(lines), ""

    @staticmethod
    def _usage_rows(job: FakeJob, *, partial: bool = False) -> str:
        """The job's rows in the usage format (fields of ``slurm._slurm.usage.USAGE_SACCT_FIELDS``);
        ``partial``: without the time limit and requested memory."""
        minutes = job.options.get("time", "")
        limit = "" if partial else minutes if minutes.isdigit() else "60"
        mem = "" if partial else job.options.get("mem", "2G")
        times = "2026-11-30T05:28:06|2026-11-30T05:28:07|2026-11-30T05:28:13"
        node = job.node or "node1"
        tres = f"billing=1,cpu=1,mem={mem},node=1"
        return (
            f"{job.key}|{job.state}|{times}|{job.elapsed}|{job.cpu}||1|{mem}|{limit}|{node}|{tres}\n"
            f"{job.key}.batch|{job.state}|{times}|{job.elapsed}|{job.cpu}|{job.max_rss}|1|||"
            f"{node}|cpu=1,mem={mem},node=1\n"
        )

    def _scancel(self, args: list[str]) -> tuple[int, str, str]:
        for target in args:
            for job in self.jobs.values():
                if target in (job.key, job.array_id) and job.state in ("PENDING", "RUNNING"):
                    self.finish(job.key, "CANCELLED", exit_code="0:15")
        return 0, "", ""

    def _scontrol(self, args: list[str]) -> tuple[int, str, str]:
        if args[:2] == ["show", "config"]:
            return 0, f"MaxArraySize            = {self.max_array_size}\n", ""
        return 1, "", f"scontrol: unsupported here: {args}\n"
