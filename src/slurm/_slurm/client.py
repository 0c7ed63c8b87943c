"""``SlurmClient``: the one client of Slurm's commands, over a transport.

Every ``sbatch``, ``squeue``, ``sacct``, ``scancel`` and ``scontrol`` the SDK
runs goes through here, whether for a submission, the tracker or the ``slurm``
command. The argv builders and parsers are the pure functions of
:mod:`slurm._slurm.commands`; where the command runs is the transport's business.

Locally, Slurm's variables inherited from a parent job (``SLURM_*``,
``SBATCH_*``...) are dropped from every command, so that a task submitted
from inside a running workflow gets the options it asked for, not the
workflow's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence

from slurm._slurm.commands import (
    JobInfo,
    JobState,
    parse_sbatch_output,
    parse_show_config,
    parse_slurm_conf,
    sbatch_argv,
    sbatch_running,
    scancel_argv,
    scontrol_show_config_argv,
)
from slurm._slurm.queries import (
    CHUNK,
    query_never_requeued,
    query_sacct,
    query_squeue,
    query_usage,
)
from slurm._slurm.states import knows_only_job_state, parse_squeue_states, squeue_states_argv
from slurm._slurm.usage import Usage
from slurm._transport.base import CommandResult, Transport
from slurm._wire.queue import is_pool_call
from slurm._wire.record import field, record
from slurm.errors import ConnectionLostError, SlurmError, SubmissionError

__all__ = ["Look", "SlurmClient"]

logger = logging.getLogger(__name__)

_INHERITED_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SQUEUE_", "SACCT_", "SRUN_")
#: Kept from a job's environment for the jobs it submits: the cluster's configuration,
#: and a site's export policy (``SBATCH_EXPORT=NONE`` in the login profile).
_KEEP_INHERITED = frozenset({"SLURM_CONF", "SBATCH_EXPORT"})
#: Never passed to a Slurm command, so never into a job's environment (sbatch exports
#: the submitter's environment): the SDK's own secrets.
_SECRETS = ("SLURM_SDK_PASSWORD",)
_ATTEMPTS = 5
_TRANSIENT_ERRORS = (
    "Socket timed out",
    "Resource temporarily unavailable",
    "Unable to contact slurm controller",
    "Zero Bytes were transmitted",
    "Connection refused",
)
_DEFAULT_MAX_ARRAY_SIZE = 1001
# How long an sbatch cut off from its client may still be submitting: Slurm's clients
# retry connecting for MessageTimeout s, then wait as long again for the answer.
_LOST_SBATCH_WAIT = 60.0


@record(frozen=True)
class Look:
    """One batched look at many jobs: squeue first, then sacct for those it no longer lists.

    Attributes:
        infos: what Slurm said, by job id (array elements as ``A_i``).
        queued: the ids squeue listed, less the jobs preempted for good (``Requeue=0``).
        accounting: whether sacct answered; ``None`` when it was not asked.
        calls: how many commands it took.
    """

    infos: dict[str, JobInfo] = field(default_factory=dict)
    queued: frozenset[str] = frozenset()
    accounting: bool | None = None
    calls: int = 0

    def knows(self, job_id: str) -> bool:
        """Slurm reported ``job_id`` (or, for an array's id, one of its elements)."""
        return job_id in self.infos or any(key.startswith(f"{job_id}_") for key in self.infos)

    def is_final(self, job_id: str) -> bool:
        """The job is over and will not run again, by what this look saw."""
        info = self.infos.get(job_id)
        return info is not None and info.is_final(queued=job_id in self.queued)


class SlurmClient:
    """Runs and parses Slurm's commands on one cluster.

    Args:
        transport: where the commands run (local or SSH).
        strip_inherited: drop ``SLURM_*`` and similar variables inherited from
            a parent job (the local backend).

    Attributes:
        calls: how many commands were sent to the controller (squeue, sacct,
            sbatch, scancel, scontrol), for the benchmarks.
    """

    def __init__(self, transport: Transport, *, strip_inherited: bool) -> None:
        self.transport = transport
        self._strip_inherited = strip_inherited
        self._max_array_size: int | None = None
        self._only_job_state: bool | None = None
        self.calls = 0

    def run(
        self, argv: Sequence[str], *, check: bool = True, retry: bool = True, counted: bool = True
    ) -> CommandResult:
        """Run one Slurm command (see :meth:`Transport.run` for ``check`` and ``retry``);
        ``counted=False`` for one that does not reach the controller (``--version``)."""
        argv = list(argv)
        dropped = [name for name in _SECRETS if name in os.environ]
        if self._strip_inherited:
            dropped += sorted(
                name
                for name in os.environ
                if name.startswith(_INHERITED_PREFIXES) and name not in _KEEP_INHERITED
            )
        if dropped:
            argv = ["env", *(f"-u{name}" for name in dropped), *argv]
        self.calls += counted
        return self.transport.run(argv, check=check, retry=retry)

    def _ask(self, argv: list[str]) -> CommandResult:
        return self.run(argv, check=False)

    # --- looking at jobs ------------------------------------------------------------
    def squeue(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """What squeue knows of these jobs (an array's id stands for all its elements)."""
        return query_squeue(self._ask, job_ids)

    def sacct(self, job_ids: Sequence[str], since: str | None = None) -> dict[str, JobInfo] | None:
        """What accounting knows of these jobs; ``None`` when sacct is not usable here."""
        return query_sacct(self._ask, job_ids, since)

    def usage(self, job_ids: Sequence[str]) -> dict[str, Usage] | None:
        """What accounting recorded of these jobs' usage; ``None`` when sacct is not usable.

        Calls run by a pool's workers (no Slurm ids) are left out: their figures are the
        runner's own."""
        job_ids = [j for j in job_ids if not is_pool_call(j)]
        if not job_ids:
            return {}
        return query_usage(self._ask, job_ids)

    def knows_only_job_state(self) -> bool:
        """Whether this cluster's squeue has ``--only-job-state`` (Slurm 24.05 and later),
        asked once with ``squeue --version`` (which does not reach the controller)."""
        if self._only_job_state is None:
            try:
                result = self.run(["squeue", "--version"], check=False, counted=False)
            except SlurmError:
                self._only_job_state = False
            else:
                self._only_job_state = result.returncode == 0 and knows_only_job_state(
                    result.stdout
                )
        return self._only_job_state

    def look(
        self,
        job_ids: Sequence[str],
        *,
        since: str | None = None,
        accounting: bool = True,
        exit_codes: bool = False,
        running: Mapping[str, JobInfo] | None = None,
    ) -> Look:
        """One squeue for every job, then one sacct for those squeue no longer lists.

        ``exit_codes`` also asks sacct about ended jobs squeue still lists (it
        has no exit codes); ``accounting=False`` never asks sacct. ``running``: what
        the last look saw of every one of these jobs, each RUNNING; where squeue has
        ``--only-job-state`` (:mod:`slurm._slurm.states`) that light query comes first,
        and when each job is still RUNNING it is the answer (the rest as last seen).

        Raises:
            CommandError: squeue failed for another reason than unknown ids.
        """
        calls = 0

        def ask(argv: list[str]) -> CommandResult:
            nonlocal calls
            calls += 1
            return self._ask(argv)

        if (
            running is not None
            and 0 < len(job_ids) <= CHUNK
            and all(running.get(j) is not None for j in job_ids)
            and self.knows_only_job_state()
        ):
            light = ask(squeue_states_argv(list(job_ids)))
            states = parse_squeue_states(light.stdout) if light.returncode == 0 else {}
            if all(states.get(j) is JobState.RUNNING for j in job_ids):
                return Look({j: running[j] for j in job_ids}, frozenset(job_ids), None, calls)
        infos = query_squeue(ask, job_ids)
        # Listed, but preempted for good: as over as if squeue had forgotten it.
        queued = frozenset(infos) - query_never_requeued(ask, infos)
        base = Look(infos, queued)
        gone = [job_id for job_id in job_ids if not base.knows(job_id)]
        if exit_codes:
            gone += [j for j in job_ids if j in infos and infos[j].state.is_terminal]
        if not gone or not accounting:
            return Look(infos, queued, None, calls)
        found = query_sacct(ask, gone, since)
        infos.update(found or {})
        return Look(infos, queued, found is not None, calls)

    # --- changing jobs --------------------------------------------------------------
    def cancel(self, job_ids: Sequence[str]) -> CommandResult:
        """``scancel`` these jobs (no error for jobs that already ended; a pooled call,
        which is no Slurm job, is left alone)."""
        return self.run(scancel_argv([j for j in job_ids if not is_pool_call(j)]), check=False)

    def sbatch(self, script_path: str, *, comment: str | None, flags: Sequence[str] = ()) -> str:
        """Submit the batch script; return the job id. Never submits twice.

        When the connection drops after sbatch was sent, or the controller
        answers with a transient error, squeue is asked for a job with this
        ``comment`` (which the script carries) before sbatch is tried again;
        after a drop, first once the cut-off sbatch no longer runs on the login
        node (it may still submit the job).
        With ``comment=None`` (a script submitted before, whose earlier job
        carries the same comment) a lost answer or a transient error is
        raised instead of retried.

        Raises:
            SubmissionError: sbatch refused the job, or nobody can tell whether
                it was submitted.
            ConnectionLostError: the connection kept dropping.
        """
        argv = sbatch_argv(script_path, flags=flags)
        delay = 0.5
        for attempt in range(_ATTEMPTS):
            last = attempt == _ATTEMPTS - 1
            try:
                result = self.run(argv, retry=False, check=False)
            except ConnectionLostError:
                if last or comment is None:
                    raise
                self._wait_for_lost_sbatch(script_path)
                found = self.find_by_comment(comment)
                if found is not None:
                    return found
                continue
            if result.returncode == 0:
                return parse_sbatch_output(result.stdout)
            transient = any(text in result.stderr for text in _TRANSIENT_ERRORS)
            if transient and not last and comment is not None:
                logger.info("sbatch: transient error (%s); retrying", result.stderr.strip())
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                found = self.find_by_comment(comment)
                if found is not None:
                    return found
                continue
            raise SubmissionError(
                f"sbatch refused the job ({result.stderr.strip() or 'no message'}). Check the "
                "job's options (partition, account, qos, limits) against what Slurm said.",
                refused=True,
                argv=result.argv,
                returncode=result.returncode,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        raise AssertionError("unreachable")

    def _wait_for_lost_sbatch(self, script_path: str) -> None:
        """Wait until no sbatch of ``script_path`` runs on the login node any more.

        An sbatch whose connection dropped keeps running there (nothing signals it)
        and may still submit the job, after a look by comment found nothing.
        Another login node behind the same name shows none: the look goes on.
        """
        deadline = time.monotonic() + _LOST_SBATCH_WAIT
        while True:
            try:
                ps = self.transport.run(["ps", "wwx", "-o", "args="], check=False)
            except SlurmError:
                return
            if not sbatch_running(ps.stdout, script_path):
                return
            if time.monotonic() > deadline:
                logger.warning("the sbatch of %s still runs; looking for its job", script_path)
                return
            logger.info("waiting for the sbatch of %s, cut off from us, to end", script_path)
            time.sleep(0.5)

    def find_by_comment(self, comment: str) -> str | None:
        """The id of a job of ours whose ``--comment`` is ``comment``, or None.

        Looks in every state squeue still shows (a short job may have ended
        already; Slurm keeps it there for ``MinJobAge``). A failing squeue is
        asked again: "not found" must mean not found, or a job is submitted twice.

        Raises:
            SubmissionError: squeue kept failing, so nobody can tell.
        """
        argv = ["squeue", "--noheader", "--me", "--states=all", "--format=%i|%k"]
        delay = 0.5
        for attempt in range(_ATTEMPTS):
            result = self.run(argv, check=False)
            if result.returncode == 0:
                break
            if attempt < _ATTEMPTS - 1:
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        else:
            raise SubmissionError(
                f"Cannot tell whether the job with comment {comment!r} reached Slurm: sbatch's "
                f"answer was lost and squeue fails ({result.stderr.strip() or 'no message'}). "
                "Look for that comment in `squeue --me --states=all --format=%i|%k` before "
                "submitting it again.",
                argv=result.argv,
                returncode=result.returncode,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        for line in result.stdout.splitlines():
            job_id, _, found = line.strip().partition("|")
            if found == comment:
                return job_id.split("_", 1)[0]
        return None

    def comments_of_mine(self, job_ids: Sequence[str]) -> dict[str, str]:
        """``{job id: --comment}`` of those of ``job_ids`` (array elements by their array's
        id) that squeue lists as this user's, in any state it still shows.

        Raises:
            CommandError: squeue failed for another reason than unknown ids.
        """
        wanted = {j.split("_", 1)[0] for j in job_ids}
        argv = ["squeue", "--noheader", "--me", "--states=all", "--format=%i|%k"]
        result = self.run(argv, check=True)
        found: dict[str, str] = {}
        for line in result.stdout.splitlines():
            job_id, _, comment = line.strip().partition("|")
            base = job_id.split("_", 1)[0]
            if base in wanted:
                found[base] = comment
        return found

    # --- the cluster's configuration --------------------------------------------------
    def max_array_size(self) -> int:
        """Slurm's ``MaxArraySize``, read once: from this machine's ``slurm.conf`` when the
        client runs on the cluster (no message to the controller), else from
        ``scontrol show config``."""
        if self._max_array_size is None:
            value = self._local_setting("maxarraysize")
            if value is None:
                result = self.run(scontrol_show_config_argv(), check=False)
                value = parse_show_config(result.stdout).get("MaxArraySize", "")
            valid = value.isdigit() and int(value) > 0
            self._max_array_size = int(value) if valid else _DEFAULT_MAX_ARRAY_SIZE
        return self._max_array_size

    def _local_setting(self, key: str) -> str | None:
        """A setting of the ``slurm.conf`` this machine's commands read (``$SLURM_CONF``,
        else ``/etc/slurm/slurm.conf``): its value, ``""`` when the file leaves it to
        Slurm's default, ``None`` when unknown here (over SSH, no readable file, or one
        that includes others)."""
        if self.transport.kind != "local":
            return None
        path = os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf"
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                config = parse_slurm_conf(f.read())
        except OSError:
            return None
        return None if config is None else config.get(key, "")
