"""The files of one job directory, named in one place for the client and the runner.

A single job::

    JOB_DIR/payload.pkl  sys_path.txt  job.sh  stdout  stderr  depends_on.txt
            result.json  result.pkl  result.runs  result.usage  result.attempts
            [callbacks.pkl]  [journal.jsonl]

``callbacks.pkl`` holds the callbacks whose hooks run on the node (when there
are any); a workflow keeps the journal of the tasks it submitted.

``depends_on.txt`` (only for a call that waited for others) has one ``KIND JOB_ID``
line per job it depended on (``afterok 123``), also those that had already
finished when it was submitted (sbatch is not told of those).

A job of several ranks (``nodes``/``ntasks`` > 1) also has ``ranks/R.pkl`` and
``ranks/R.runs`` per rank and ``ranks/world_size``; ``result.pkl`` is then rank
0's outcome, or the first failed rank's. An array element of several ranks keeps
them in ``ranks/i/`` instead.

An array: the same, but each element ``i`` has its own ``payloads/i.pkl``,
``logs/i.out``, ``logs/i.err``, ``results/i.json``, ``results/i.pkl``,
``results/i.runs``, ``results/i.usage`` and ``results/i.attempts``.
A worker pool's directory (its queue and its workers' logs) is laid out by
:mod:`slurm._wire.queue`; each pooled call keeps the files above in its own directory.
``result.json`` (the outcome: no pickle) is what status checks read;
``result.pkl`` is unpickled only by ``get_result()``.

A packed array (``map(items, pack=K)``) keeps those files per call, under the
call's index, and adds ``pack.json`` (which calls each element runs, see
:mod:`slurm._wire.pack`), ``logs/element-e.out`` and ``logs/element-e.err``
(what Slurm itself writes for element ``e``, outside any call) and, for a call
the user cancelled before it ran, ``results/i.cancel``. Pure string work: no file
is touched.
"""

from __future__ import annotations

from slurm._wire.record import record

__all__ = [
    "DEPENDS",
    "PAYLOAD",
    "SCRIPT",
    "SYS_PATH",
    "JobPaths",
    "done_marker",
    "job_comment",
    "log_patterns",
    "outcome_of",
]

PAYLOAD = "payload.pkl"
SYS_PATH = "sys_path.txt"
SCRIPT = "job.sh"
DEPENDS = "depends_on.txt"
CALLBACKS = "callbacks.pkl"
JOURNAL = "journal.jsonl"
RESULTS_DIR = "results"
PAYLOADS_DIR = "payloads"
LOGS_DIR = "logs"
RANKS_DIR = "ranks"
PACK = "pack.json"


@record(frozen=True)
class JobPaths:
    """Where one job (or one array element) keeps its files."""

    job_dir: str
    index: int | None = None

    @property
    def result(self) -> str:
        """The result envelope, written atomically when the call ends."""
        if self.index is None:
            return f"{self.job_dir}/result.pkl"
        return f"{self.job_dir}/{RESULTS_DIR}/{self.index}.pkl"

    @property
    def outcome(self) -> str:
        """The outcome as JSON (ok, exception type, message, traceback): read without unpickling.

        Written just before :attr:`result`, whose appearance means "finished".
        """
        return outcome_of(self.result)

    @property
    def runs(self) -> str:
        """The runner's log of starts, requeues and ends."""
        return self.result.removesuffix(".pkl") + ".runs"

    @property
    def usage(self) -> str:
        """The runner's own measurements of the run (JSON), written just before the result."""
        return self.result.removesuffix(".pkl") + ".usage"

    @property
    def attempts(self) -> str:
        """The client's record of earlier attempts (JSON lines), when the call was retried."""
        return self.result.removesuffix(".pkl") + ".attempts"

    @property
    def cancel(self) -> str:
        """Written by ``Job.cancel()`` of a call in a worker pool: a worker skips it."""
        return self.result.removesuffix(".pkl") + ".cancel"

    @property
    def stdout(self) -> str:
        if self.index is None:
            return f"{self.job_dir}/stdout"
        return f"{self.job_dir}/{LOGS_DIR}/{self.index}.out"

    @property
    def stderr(self) -> str:
        if self.index is None:
            return f"{self.job_dir}/stderr"
        return f"{self.job_dir}/{LOGS_DIR}/{self.index}.err"

    @property
    def script(self) -> str:
        return f"{self.job_dir}/{SCRIPT}"

    @property
    def payload(self) -> str:
        """The call: one per job, or one per array element."""
        if self.index is None:
            return f"{self.job_dir}/{PAYLOAD}"
        return f"{self.job_dir}/{PAYLOADS_DIR}/{self.index}.pkl"

    @property
    def depends_on(self) -> str:
        """The jobs the call depended on (one per job directory, arrays too)."""
        return f"{self.job_dir}/{DEPENDS}"

    @property
    def sys_path(self) -> str:
        return f"{self.job_dir}/{SYS_PATH}"

    @property
    def callbacks(self) -> str:
        """The callbacks whose hooks run on the node (pickled one by one), beside the
        payload: one file per submission, shared by an array's elements."""
        return f"{self.job_dir}/{CALLBACKS}"

    @property
    def journal(self) -> str:
        """A workflow's journal of the tasks it submitted (see :mod:`slurm._wire.journal`)."""
        return f"{self.job_dir}/{JOURNAL}"

    @property
    def results_dir(self) -> str:
        """An array's directory of element results."""
        return f"{self.job_dir}/{RESULTS_DIR}"

    @property
    def ranks_dir(self) -> str:
        """A multi-rank job's (or array element's) directory of per-rank results."""
        if self.index is None:
            return f"{self.job_dir}/{RANKS_DIR}"
        return f"{self.job_dir}/{RANKS_DIR}/{self.index}"

    def rank_result(self, rank: int) -> str:
        return f"{self.ranks_dir}/{rank}.pkl"

    @property
    def world_size(self) -> str:
        """A multi-rank job's number of ranks, written before they start."""
        return f"{self.ranks_dir}/world_size"

    @property
    def logs_dir(self) -> str:
        """An array's directory of element logs."""
        return f"{self.job_dir}/{LOGS_DIR}"

    @property
    def pack(self) -> str:
        """A packed array's plan: which calls each element runs."""
        return f"{self.job_dir}/{PACK}"

    @property
    def payloads_dir(self) -> str:
        """An array's directory of element payloads."""
        return f"{self.job_dir}/{PAYLOADS_DIR}"


def outcome_of(result_path: str) -> str:
    """The outcome file (JSON) beside a result file (``result.pkl``, ``results/i.pkl``)."""
    return result_path.removesuffix(".pkl") + ".json"


def done_marker(job_id: str, call: int | None = None) -> str:
    """The name of the done marker the runner drops for a job (``123_4``) or for one
    call of a packed element (``123_4+7``: the element's id and the call's index)."""
    return job_id if call is None else f"{job_id}+{call}"


def log_patterns(literal_job_dir: str, *, array: bool, packed: bool = False) -> tuple[str, str]:
    """sbatch's ``--output`` and ``--error`` for a job directory (already %-escaped).

    An array's elements write ``logs/%a.out`` and ``logs/%a.err`` (sbatch fills in the
    index); a packed array's ``logs/element-%a.*``, the calls' own logs being ``logs/i.*``.
    """
    if packed:
        return (
            f"{literal_job_dir}/{LOGS_DIR}/element-%a.out",
            f"{literal_job_dir}/{LOGS_DIR}/element-%a.err",
        )
    if array:
        return f"{literal_job_dir}/{LOGS_DIR}/%a.out", f"{literal_job_dir}/{LOGS_DIR}/%a.err"
    return f"{literal_job_dir}/stdout", f"{literal_job_dir}/stderr"


def job_comment(job_dir: str) -> str:
    """The ``--comment`` the SDK gives a job: it finds the job again from its directory's
    name (a lost sbatch answer) and tells the SDK's jobs from others with the same id."""
    return f"slurm-sdk:{job_dir.rsplit('/', 1)[-1]}"
