"""The job-side entry point: ``python -P -m slurm.runner JOB_DIR``.

``-P`` keeps the job's working directory off ``sys.path``: a stray module
there (a ``cloudpickle.py`` in ``$HOME``) is never imported.

Loads the payload, turns job references into their results, injects the
job/workflow contexts, calls the function and writes the result envelope
atomically. Kept light: nothing heavy is imported before the user's code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from slurm.container import CONTAINER_VARIABLE
from slurm.layout import JobPaths
from slurm.payload import (
    Envelope,
    JobRef,
    Payload,
    WorkflowSpec,
    envelope_for_exception,
    envelope_for_value,
    loads_payload,
)
from slurm.runtime import JobContext, _requeue_callbacks, _requeue_event, _set_current

__all__ = ["CODE_DIR_VARIABLE", "DONE_DIR_VARIABLE", "main", "run_job", "run_ranks"]

#: Set by the batch script: where to drop the done marker the client's tracker lists.
DONE_DIR_VARIABLE = "SLURM_SDK_DONE_DIR"
#: Set by the batch script when local source was shipped (see slurm.packaging.launch).
CODE_DIR_VARIABLE = "SLURM_SDK_CODE_DIR"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class _Interrupted(BaseException):
    """Raised in the task's thread when Slurm warns the job (not an error of the task)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Guard:
    """Turns Slurm's warning signals into checkpoints and requeues.

    USR1 (``--signal=B:USR1@grace``) means the time limit is near: the
    checkpoint callbacks run, the task is interrupted and the runner requeues
    the job itself (Slurm does not requeue time limits), unless ``max_requeues``
    is used up, in which case the task just runs on. TERM means preemption
    (Slurm requeues the job) or cancellation: the callbacks run and the task
    runs on until Slurm kills it; if it finishes first, its result counts and
    a requeued run returns at once.
    """

    def __init__(self) -> None:
        self.in_task = False
        self.can_requeue = False
        self.signum: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        first = not _requeue_event.is_set()
        _requeue_event.set()
        if first:
            for callback in list(_requeue_callbacks):
                try:
                    callback()
                except Exception as exc:  # a failed checkpoint must not hide the requeue
                    print(
                        f"slurm-sdk: requeue callback {callback!r} failed: {exc!r}", file=sys.stderr
                    )
        if signum == signal.SIGUSR1 and self.can_requeue and self.signum is None:
            self.signum = signum
            if self.in_task:
                raise _Interrupted(signum)


def _process_began() -> float | None:
    """When this process began (the batch script's, which execs the runner): ~10 ms.

    It is the start of the job's batch step, which sacct gives only to the second;
    ``slurm jobs report`` draws the run from it.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        return time.time() - (
            time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        )
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _log_run(path: Path, event: str, restart: int) -> None:
    began = _process_began() if event == "start" else None
    since = f" began={began:.3f}" if began is not None else ""
    line = f"{time.time():.3f} {event} restart={restart}{since} host={os.uname().nodename}\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def _previous_starts(runs_path: Path) -> int:
    """Starts of this attempt so far (a retry by the client begins a new count)."""
    try:
        text = runs_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    lines = text.splitlines()
    retries = [i for i, line in enumerate(lines) if " retry " in line]
    return sum(1 for line in lines[retries[-1] + 1 if retries else 0 :] if " start " in line)


def _submitted_at(paths: JobPaths) -> float | None:
    """When this attempt was submitted: the client's last retry record, else the script's mtime."""
    import json

    try:
        lines = Path(paths.attempts).read_text(encoding="utf-8").splitlines()
        return float(json.loads(lines[-1])["next_submitted"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        pass
    try:
        return os.stat(paths.script).st_mtime
    except OSError:
        return None


def _measure(paths: JobPaths, env: dict[str, str], started: float) -> bytes:
    """The runner's own usage figures, for clusters without accounting (JSON)."""
    import json
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_time = env.get("SLURM_JOB_START_TIME", "")
    cpus = env.get("SLURM_CPUS_ON_NODE") or env.get("SLURM_CPUS_PER_TASK")
    mem_mb = env.get("SLURM_MEM_PER_NODE")
    if not mem_mb and env.get("SLURM_MEM_PER_CPU") and cpus and cpus.isdigit():
        mem_mb = str(int(env["SLURM_MEM_PER_CPU"]) * int(cpus))
    gpus = env.get("SLURM_GPUS_ON_NODE")
    record = {
        "submitted": _submitted_at(paths),
        "started": float(start_time) if start_time.isdigit() else started,
        "ended": time.time(),
        "cpu_s": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
        # Linux reports kilobytes; the largest process, this one or a child.
        "max_rss_bytes": max(own.ru_maxrss, children.ru_maxrss) * 1024,
        "cpus": int(cpus) if cpus and cpus.isdigit() else None,
        "mem_mb": int(mem_mb) if mem_mb and mem_mb.isdigit() else None,
        "gpus": int(gpus) if gpus and gpus.isdigit() else None,
        "node": os.uname().nodename,
    }
    return json.dumps(record, sort_keys=True).encode()


def _requeue_self(job_id: str) -> bool:
    """Ask Slurm to requeue this job (time limits are not requeued by Slurm itself)."""
    import subprocess

    try:
        done = subprocess.run(  # noqa: S603 (argv list, never a shell)
            ["scontrol", "requeue", job_id],  # noqa: S607 (Slurm from the job's PATH)
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"slurm-sdk: could not requeue job {job_id}: {exc}", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(
            f"slurm-sdk: scontrol requeue {job_id} failed: {done.stderr.strip()}",
            file=sys.stderr,
        )
    return done.returncode == 0


def _drop_marker(done_dir: str | None, job_id: str | None) -> None:
    """Tell the client's tracker, with one file in a shared directory, that we are done."""
    if not done_dir or not job_id:
        return
    # On failure the tracker still finds the result file itself, only later.
    with contextlib.suppress(OSError):
        Path(done_dir, job_id).touch()


def _resolve(ref: JobRef) -> Any:
    if ref.result_dirs:  # an ArrayJob: every element's result, array after array, in item order
        values: list[Any] = []
        for directory in ref.result_dirs:
            files = sorted(Path(directory).glob("*.pkl"), key=lambda p: int(p.stem))
            values.extend(Envelope.from_bytes(f.read_bytes()).unwrap() for f in files)
        return values
    path = Path(ref.result_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(
            f"The result of job {ref.job_id}, passed as an argument, is missing at {path}: "
            "that job has not finished successfully."
        ) from None
    return Envelope.from_bytes(data, job_id=ref.job_id).unwrap()


def _extend_sys_path(entries: list[str]) -> None:
    for entry in entries:
        if entry not in sys.path and os.path.isdir(entry):
            sys.path.append(entry)


def _put_code_first(code_dir: str | None) -> None:
    """The shipped source goes first on sys.path, and the working directory that
    ``python -m`` put there goes: no other file in it may shadow or add a module."""
    if not code_dir:
        return
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd, code_dir)]
    sys.path.insert(0, code_dir)


def _element(env: dict[str, str], array: bool) -> tuple[int | None, str | None]:
    """Which array element this is (``None`` outside an array) and its id, ``ARRAY_INDEX``."""
    job_id = env.get("SLURM_JOB_ID")
    if not array:
        return None, job_id
    index = int(env.get("SLURM_ARRAY_TASK_ID") or 0)
    if env.get("SLURM_ARRAY_JOB_ID"):
        job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{index}"
    return index, job_id


def run_job(
    job_dir: str | Path,
    env: dict[str, str] | None = None,
    *,
    array: bool = False,
    rank: int | None = None,
) -> int:
    """Run the call stored in ``job_dir``; return the process exit code.

    ``array``: the job is an element of a Slurm array (``SLURM_ARRAY_TASK_ID``
    says which) and writes its own result file. ``rank``: one rank of a
    multi-rank job, started by :func:`run_ranks` through ``srun``; it writes
    ``ranks/RANK.pkl`` and leaves the job's result to :func:`run_ranks`.
    """
    started = time.time()
    job_dir = Path(job_dir)
    env = dict(os.environ if env is None else env)
    guard = _Guard()
    if env.get("SLURM_JOB_ID"):
        guard.install()
    index, job_id = _element(env, array)
    restart = int(env.get("SLURM_RESTART_COUNT") or 0)
    paths = JobPaths(str(job_dir), index)
    result_path = Path(paths.result if rank is None else paths.rank_result(rank))
    runs_path = result_path.with_suffix(".runs")
    # Earlier starts count too: a job the client had to resubmit (the cluster could
    # not requeue it) gets a new id and a fresh SLURM_RESTART_COUNT.
    restart = max(restart, _previous_starts(runs_path))
    env["SLURM_RESTART_COUNT"] = str(restart)
    if result_path.exists() and rank is None:  # requeued after it had finished: never run twice
        _log_run(runs_path, "already-finished", restart)
        return 0
    _log_run(runs_path, "start", restart)
    envelope: Envelope
    done_dir = env.get(DONE_DIR_VARIABLE)
    try:
        raw = Path(paths.payload).read_bytes()
        sys_path = Path(paths.sys_path).read_text().splitlines()
        _extend_sys_path(sys_path)
        _put_code_first(env.get(CODE_DIR_VARIABLE))
        payload = loads_payload(raw, _resolve)
        max_requeues = payload.policy.max_requeues
        # A task that is retried with more time (Retry on TIMEOUT) is not requeued
        # with the same limit: it runs on until Slurm stops it, and the client retries.
        guard.can_requeue = restart < max_requeues and payload.policy.requeue_on_time_limit
        if restart > max_requeues:
            raise RuntimeError(
                f"job {job_id} was requeued {restart} times, more than max_requeues="
                f"{max_requeues}; raise max_requeues or give the task more time"
            )
        call = payload.call
        envelope = _call(payload, tuple(call.args), dict(call.kwargs), job_dir, job_id, env, guard)
    except _Interrupted:
        if rank is None and CONTAINER_VARIABLE in env:  # in a container: no scontrol here
            request = _requeue_request(job_dir, env.get("SLURM_JOB_ID", ""))
            _atomic_write(request, b"")  # the batch step outside requeues
            _log_run(runs_path, "requeued-time-limit", restart)
            return 0
        if rank is None and _requeue_self(env.get("SLURM_JOB_ID", "")):
            _log_run(runs_path, "requeued-time-limit", restart)
            return 0
        _log_run(runs_path, "requeue-failed", restart)
        return 1
    except BaseException as exc:
        envelope = envelope_for_exception(exc, job_id=job_id)
    # A rank keeps its figures and outcome beside its result: the job's own are
    # written by run_ranks once every rank is done.
    usage_path = Path(paths.usage) if rank is None else result_path.with_suffix(".usage")
    outcome_path = Path(paths.outcome) if rank is None else result_path.with_suffix(".json")
    with contextlib.suppress(OSError):  # the figures must never cost the result
        _atomic_write(usage_path, _measure(paths, env, started))
    # The outcome first: whoever sees the result file (the job is over) finds it.
    _atomic_write(outcome_path, envelope.outcome().to_json().encode("utf-8"))
    _atomic_write(result_path, envelope.to_bytes())
    _log_run(runs_path, "finished" if envelope.ok else "failed", restart)
    if rank is None:
        _drop_marker(done_dir, job_id)
    return 0 if envelope.ok else 1


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def run_ranks(
    job_dir: str | Path,
    env: dict[str, str] | None = None,
    launch: list[str] | None = None,
    *,
    array: bool = False,
) -> int:
    """The batch step of a multi-rank job: start one runner per rank with ``srun``,
    then write the job's result: rank 0's value, or the first failed rank's error
    (naming the rank and its host). Every rank gets the same ``MASTER_ADDR`` (the
    first node) and a ``MASTER_PORT`` found free on it. ``launch`` replaces this
    interpreter in the ``srun`` line (pyxis flags and the image's python, in a container).
    ``array``: an element of a Slurm array, whose ranks and result are its own.
    """
    import subprocess

    from slurm.runtime import expand_hostlist

    env = dict(os.environ if env is None else env)
    index, job_id = _element(env, array)
    paths = JobPaths(str(job_dir), index)
    result_path, runs_path = Path(paths.result), Path(paths.runs)
    restart = max(int(env.get("SLURM_RESTART_COUNT") or 0), _previous_starts(runs_path))
    if result_path.exists():  # requeued after it had finished: never run twice
        _log_run(runs_path, "already-finished", restart)
        return 0
    world = int(env.get("SLURM_NTASKS") or 1)
    ranks_dir = Path(paths.ranks_dir)
    ranks_dir.parent.mkdir(mode=0o700, exist_ok=True)  # an array's ranks/, beside ranks/i
    ranks_dir.mkdir(mode=0o700, exist_ok=True)
    for stale in ranks_dir.glob("*.pkl"):  # an earlier, interrupted run: all ranks run again
        stale.unlink()
    _atomic_write(Path(paths.world_size), f"{world}\n".encode())
    hosts = expand_hostlist(env.get("SLURM_JOB_NODELIST", "")) or [os.uname().nodename]
    env.setdefault("MASTER_ADDR", hosts[0])
    env.setdefault("MASTER_PORT", str(_free_port()))
    _log_run(runs_path, "start", restart)
    argv = ["srun", "--kill-on-bad-exit=0", *(launch or [sys.executable]), "-m", "slurm.runner"]
    # argv list, never a shell; srun from the job's own PATH, as Slurm's own tools find it
    mode = ["--array", "--rank"] if array else ["--rank"]
    code = subprocess.run(  # noqa: S603
        [*argv, str(job_dir), *mode], env=env, check=False
    ).returncode
    envelope = _gather(paths, world, code, job_id)
    _atomic_write(Path(paths.outcome), envelope.outcome().to_json().encode("utf-8"))
    _atomic_write(result_path, envelope.to_bytes())
    _log_run(runs_path, "finished" if envelope.ok else "failed", restart)
    _drop_marker(env.get(DONE_DIR_VARIABLE), job_id)
    return 0 if envelope.ok else 1


def _gather(paths: JobPaths, world: int, srun_code: int, job_id: str | None) -> Envelope:
    """Rank 0's envelope if every rank succeeded, else the first failure, naming its rank."""
    from dataclasses import replace

    first: Envelope | None = None
    for rank in range(world):
        try:
            envelope = Envelope.from_bytes(Path(paths.rank_result(rank)).read_bytes())
        except FileNotFoundError:
            return Envelope(
                ok=False,
                type_name="slurm.errors.TaskFailedError",
                message=(
                    f"rank {rank} of {world} ended without a result (srun exited {srun_code}); "
                    "see the job's stderr"
                ),
                job_id=job_id,
            )
        if not envelope.ok:
            return replace(envelope, node=f"{envelope.node} (rank {rank} of {world})")
        first = first or envelope
    if first is None:  # world == 0: a multi-rank job has at least two ranks
        raise RuntimeError("no rank left a result")
    return first


def _call(
    payload: Payload,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    job_dir: Path,
    job_id: str | None,
    env: dict[str, str],
    guard: _Guard | None = None,
) -> Envelope:
    from slurm.task import injected_parameters

    task = payload.task
    fn = task.unwrapped
    job_context = JobContext.from_environment(env, output_dir=str(job_dir))
    _set_current(job_context)
    injected = injected_parameters(fn, workflow=task.is_workflow)
    workflow_cluster = None
    try:
        for name, kind in injected.items():
            if name in kwargs:
                continue
            if kind == "job":
                kwargs[name] = job_context
            else:
                workflow_cluster, workflow_context = _workflow_context(payload, job_dir, job_id)
                kwargs[name] = workflow_context
        if task.is_workflow and workflow_cluster is None:
            workflow_cluster, _ = _workflow_context(payload, job_dir, job_id)
        if guard is not None and guard.signum is not None:
            raise _Interrupted(guard.signum)  # warned while loading: do not start
        try:
            if guard is not None:
                guard.in_task = True
            value = fn(*args, **kwargs)
        except _Interrupted:
            raise
        except BaseException as exc:
            return envelope_for_exception(exc, job_id=job_id)
        finally:
            if guard is not None:
                guard.in_task = False
        return envelope_for_value(value, job_id=job_id)
    finally:
        if workflow_cluster is not None:
            workflow_cluster.close()


def _workflow_context(payload: Payload, job_dir: Path, job_id: str | None) -> Any:
    from slurm import context
    from slurm.cluster import Cluster
    from slurm.workflow import WorkflowContext

    spec = payload.workflow or WorkflowSpec({}, f"{job_dir}/tasks/.index")
    cluster = Cluster.for_workflow(spec, job_dir=str(job_dir))
    context.set_process_default(cluster)
    shared = job_dir / "shared"
    shared.mkdir(mode=0o700, parents=True, exist_ok=True)
    ctx = WorkflowContext(
        cluster=cluster,
        workflow_job_id=job_id or "",
        workflow_job_dir=job_dir,
        shared_dir=shared,
    )
    return cluster, ctx


def _requeue_request(job_dir: str | Path, job_id: str) -> Path:
    """Left in the job directory by a runner in a container that wants its job requeued."""
    return Path(job_dir) / f"requeue-{job_id}.request"


def _hand_over_to_container(job_dir: str, mode: list[str], spec_json: str) -> int:
    """The batch step of a task in a container: run the runner in the image through pyxis."""
    from slurm.container import ContainerSpec, code_paths, srun_prefix

    spec = ContainerSpec.from_json(spec_json)
    try:
        extra = Path(JobPaths(job_dir).sys_path).read_text().splitlines()
    except OSError:
        extra = []
    if os.environ.get(CODE_DIR_VARIABLE):  # shipped source, possibly outside the job base dir
        extra.append(os.environ[CODE_DIR_VARIABLE])
    launch, env_add = srun_prefix(spec, code_paths(extra), job_dir)
    env = {**os.environ, **env_add}
    if "--ranks" in mode:
        return run_ranks(job_dir, env=env, launch=launch, array="--array" in mode)
    import subprocess

    # argv list, never a shell; srun from the job's PATH, as in every batch step
    step = subprocess.Popen(  # noqa: S603
        ["srun", *launch, "-m", "slurm.runner", job_dir, *mode],  # noqa: S607
        env=env,
    )

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        step.send_signal(signum)  # srun passes it on to the runner in the container

    for signum in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(signum, forward)
    code = step.wait()
    request = _requeue_request(job_dir, os.environ.get("SLURM_JOB_ID", ""))
    if request.exists():  # the time limit came: the runner inside checkpointed and asks
        request.unlink()
        return 0 if _requeue_self(os.environ.get("SLURM_JOB_ID", "")) else 1
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mode = args[1:]
    # --array: an element of an array; --ranks: the batch step of several ranks; --rank: one rank.
    modes: list[list[str]] = [[], ["--ranks"], ["--rank"]]
    if len(args) < 1 or mode not in [*modes, *(["--array", *m] for m in modes)]:
        print("usage: python -m slurm.runner JOB_DIR [--array] [--ranks | --rank]", file=sys.stderr)
        return 2
    array = "--array" in mode
    container = os.environ.get(CONTAINER_VARIABLE)
    if container and "--rank" not in mode:
        return _hand_over_to_container(args[0], mode, container)
    if "--ranks" in mode:
        return run_ranks(args[0], array=array)
    if "--rank" in mode:
        return run_job(args[0], array=array, rank=int(os.environ.get("SLURM_PROCID") or 0))
    return run_job(args[0], array=array)


if __name__ == "__main__":
    sys.exit(main())
