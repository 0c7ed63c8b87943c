"""Tasks used by the integration tests (importable on the compute node: the
runner puts the client's sys.path entries that exist there on its own)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from slurm import JobContext, Retry, WorkflowContext, task, workflow
from slurm.examples.parallel_train_eval.eval_task import evaluate_epoch
from slurm.examples.torch_distributed import all_reduce


class CustomError(Exception):
    """An exception type that exists on both sides."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


class _Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


@task(time="00:02:00", mem="64M")
def add(a: int, b: int) -> int:
    return a + b


@task(time="00:02:00", mem="64M")
def echo(value: Any) -> Any:
    return value


@task(time="00:02:00", mem="64M")
def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


@task(time="00:02:00", mem="64M")
def after_file(path: str, value: Any = None, timeout: float = 90) -> Any:
    """Return ``value`` once ``path`` exists: a job that ends when the test says so, not
    after a sleep a busy cluster can outlast. Raises TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.1)
    return value


@task(time="00:02:00", mem="64M")
def fail_with(message: str, code: int = 7) -> None:
    raise CustomError(message, code)


@task(time="00:02:00", mem="64M")
def fail_after(seconds: float, message: str) -> None:
    time.sleep(seconds)
    raise CustomError(message, 1)


@task(time="00:02:00", mem="64M")
def fail_unpicklable() -> None:
    raise _Unpicklable()


@task(time="00:02:00", mem="64M")
def return_unpicklable() -> Any:
    return threading.Lock()


@task(time="00:02:00", mem="64M")
def kill_self() -> None:
    print("about to die", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


@task(time="00:02:00", mem="64M")
def maybe_fail(x: int) -> int:
    if x == 2:
        raise ValueError(f"item {x} is bad")
    return x * 10


@task(time="00:02:00", mem="64M")
def print_and_return(text: str) -> str:
    print(text, flush=True)
    import sys

    print(f"err:{text}", file=sys.stderr, flush=True)
    return text


@task(time="00:02:00", mem="64M")
def job_facts(ctx: JobContext) -> dict[str, Any]:
    return {
        "job_id": ctx.job_id,
        "hostnames": list(ctx.hostnames),
        "world_size": ctx.world_size,
        "torch": ctx.torch_distributed_env(),
        "cpus_per_task": os.environ.get("SLURM_CPUS_PER_TASK"),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "job_name": os.environ.get("SLURM_JOB_NAME"),
        "cwd": os.getcwd(),
    }


@task(time="00:01:00", mem="64M")
def sleep_forever() -> None:
    time.sleep(3600)


@workflow(time="00:05:00", mem="256M")
def child_facts_workflow(context: WorkflowContext) -> dict[str, Any]:
    """Submits a child asking for other options than the workflow's own."""
    child = job_facts.with_options(cpus_per_task=2, partition="compute")()
    facts = child.get_result()
    return {
        "facts": facts,
        "child_dir": child.job_dir,
        "workflow_dir": str(context.workflow_job_dir),
        "shared_dir": str(context.shared_dir),
        "workflow_job_id": context.workflow_job_id,
        "child_id": child.id,
    }


@workflow(time="00:05:00", mem="256M")
def ctx_named_workflow(x: int, ctx) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    shared = Path(ctx.shared_dir)
    (shared / "note.txt").write_text(f"x={x}")
    squares = add.map([(i, i) for i in range(3)])
    return {"sum": sum(squares.get_results()), "shared": str(shared)}


@task(time="00:02:00", mem="64M")
def slow_evaluate(epoch: int, checkpoint_path: str, workdir: str, delay: float) -> dict[str, Any]:
    time.sleep(delay)
    return evaluate_epoch.unwrapped(epoch=epoch, checkpoint_path=checkpoint_path, workdir=workdir)


@workflow(time="00:10:00", mem="256M")
def train_with_slow_eval(
    epochs: int, epoch_steps: int, cap: int, eval_delay: float, ctx: WorkflowContext
) -> dict[str, Any]:
    """The tutorial's loop with an evaluation slower than a training segment."""
    from slurm.examples.parallel_train_eval.train_task import train_epoch_segment

    workdir = str(ctx.shared_dir)
    train_ids: dict[int, list[str]] = {}
    eval_jobs = []
    for epoch in range(epochs):
        done, index, last = 0, 0, None
        checkpoint = ""
        while done < epoch_steps:
            index += 1
            last = train_epoch_segment(
                epoch=epoch,
                start_step=done,
                steps_to_run=min(cap, epoch_steps - done),
                epoch_steps=epoch_steps,
                workdir=workdir,
                job_index=index,
            )
            train_ids.setdefault(epoch, []).append(last.id)
            result = last.get_result()
            done, checkpoint = int(result["steps_completed"]), result["checkpoint_path"]
        eval_jobs.append(
            slow_evaluate.after(last)(
                epoch=epoch, checkpoint_path=checkpoint, workdir=workdir, delay=eval_delay
            )
        )
    for job in eval_jobs:
        job.wait()
    return {"train": train_ids, "eval": [j.id for j in eval_jobs], "workdir": workdir}


@task(time="00:02:00", mem="64M")
def report_restarts(seconds: float, ctx: JobContext) -> int:
    """Runs ``seconds``; returns how often it was restarted."""
    time.sleep(seconds)
    return ctx.restart_count


@task(time="00:01:00", mem="64M", requeue_grace=45)
def resume_after_time_limit(workdir: str, ctx: JobContext) -> dict[str, Any]:
    """Works until warned of its time limit, checkpoints, and finishes once requeued."""
    from slurm._job.context import on_requeue

    checkpoint = Path(workdir) / "checkpoint.json"
    if checkpoint.exists():
        saved = json.loads(checkpoint.read_text())
        return {"resumed_from": saved, "restart": ctx.restart_count}
    progress = {"steps": 0}
    on_requeue(lambda: checkpoint.write_text(json.dumps({**progress, "restart": 0})))
    while True:
        time.sleep(0.2)
        progress["steps"] += 1


@task(
    time="00:01:00",
    mem="64M",
    requeue_grace=45,
    requeue_on_time_limit=True,
    # Slurm's one warning comes within 30 s of the start, here while the script (which
    # ignores USR1 until Python takes it over) still sleeps: only the runner's own clock
    # can tell it the warning was due. The requeued run starts at once.
    setup='[ "${SLURM_RESTART_COUNT:-0}" != 0 ] || sleep 31',
)
def warned_while_the_script_starts(ctx: JobContext) -> int:
    """Works past its time limit on the first run; the requeued run returns at once."""
    if ctx.restart_count == 0:
        time.sleep(120)
    return ctx.restart_count


@task(time="00:00:10", mem="64M")
def outlast_ten_seconds() -> None:
    """A new user's first try: ten seconds asked, two minutes of work, no checkpoint."""
    time.sleep(120)


@task(time="00:01:00", mem="64M", requeue_grace=45, max_requeues=5)
def stuck_before_its_first_step(workdir: str, ctx: JobContext) -> None:
    """Checkpoints at every warning, but never gets past step 0 (waits for data that
    never comes): every run saves the same state."""
    from slurm._job.context import on_requeue

    checkpoint = Path(workdir) / "checkpoint.json"
    state = json.loads(checkpoint.read_text()) if checkpoint.exists() else {"step": 0}

    def save() -> None:
        tmp = checkpoint.with_name(f".checkpoint.{ctx.restart_count}.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(checkpoint)

    on_requeue(save)
    while not (Path(workdir) / "data-arrived").exists():
        time.sleep(0.5)


@task(time="00:01:00", mem="64M", requeue_grace=45, max_requeues=5)
def resume_twice(workdir: str, ctx: JobContext) -> dict[str, Any]:
    """Gets one segment further in each run (its checkpoint counts them) and finishes in
    its third: two time-limit requeues, each after progress."""
    from slurm._job.context import on_requeue

    checkpoint = Path(workdir) / "checkpoint.json"
    done = json.loads(checkpoint.read_text())["segments"] if checkpoint.exists() else 0
    if done >= 2:
        return {"segments": done, "restart": ctx.restart_count}
    on_requeue(lambda: checkpoint.write_text(json.dumps({"segments": done + 1})))
    while True:
        time.sleep(0.2)


@task(time="00:02:00", mem="64M", no_requeue=True, retry=Retry(on={"NODE_FAIL"}))
def host_after(seconds: float) -> str:
    """The node it ran on, after ``seconds`` (Slurm does not requeue it: a Retry does)."""
    import socket

    time.sleep(seconds)
    return socket.gethostname()


@task(
    time="00:02:00",
    mem="200M",
    acctg_freq="task=1",
    retry=Retry(on={"OUT_OF_MEMORY"}, grow={"mem": 1.5}, learn=True),
)
def learn_memory(megabytes: int) -> int:
    """Needs more than its 200M; with learn=True its next call starts where this ended."""
    block = b"x" * (megabytes * 1024 * 1024)
    time.sleep(6)  # several of the accounting gatherer's 1 s samples
    return len(block)


@task(time="00:02:00", mem="64M")
def print_slowly(lines: int, delay: float) -> int:
    """Prints ``lines`` numbered lines, ``delay`` seconds apart (a log to follow)."""
    for i in range(lines):
        print(f"line {i}", flush=True)
        time.sleep(delay)
    return lines


@task(time="00:02:00", mem="64M")
def hold_memory(megabytes: int, seconds: float) -> int:
    """Fill ``megabytes`` of memory (touched, so resident) and hold it for ``seconds``."""
    block = b"x" * (megabytes * 1024 * 1024)
    time.sleep(seconds)
    return len(block)


@task(time=1, mem="256M", retry=Retry(on={"TIMEOUT"}, grow={"time": 2.0}))
def outlast_one_minute(marker: str) -> str:
    """Its first attempt (no ``marker`` yet) runs until its 1-minute limit stops it; a
    later one, with 2 minutes, returns at once."""
    if not os.path.exists(marker):
        Path(marker).touch()
        time.sleep(3600)
    return "done on the next attempt"


@task(
    time="00:02:00",
    mem="200M",
    acctg_freq="task=1",
    retry=Retry(on={"OUT_OF_MEMORY"}, grow={"mem": 2.0}),
)
def outgrow_memory(megabytes: int) -> int:
    """Allocates past its 200M limit: its second attempt, with 400M, succeeds."""
    block = b"x" * (megabytes * 1024 * 1024)
    time.sleep(6)  # several of the accounting gatherer's 1 s samples
    return len(block)


@task(time="00:02:00", mem="64M", nodes=2, ntasks_per_node=2)
def rank_facts(ctx: JobContext, fail_rank: int = -1) -> dict[str, Any]:
    """One rank's view of the job; rank ``fail_rank`` raises instead."""
    import socket

    if ctx.rank == fail_rank:
        raise CustomError(f"rank {ctx.rank} gives up", ctx.rank)
    return {
        "rank": ctx.rank,
        "local_rank": ctx.local_rank,
        "node_rank": ctx.node_rank,
        "world_size": ctx.world_size,
        "host": socket.gethostname(),
        "hosts": list(ctx.hostnames),
        "torch": ctx.torch_distributed_env(),
    }


@task(time="00:02:00", mem="64M", nodes=2, ntasks_per_node=1)
def element_rank_host(element: int, ctx: JobContext, fail_rank: int = -1) -> dict[str, Any]:
    """One rank of one array element: which element, which rank, where, meeting where."""
    import socket

    if ctx.rank == fail_rank:
        raise CustomError(f"element {element}: rank {ctx.rank} gives up", ctx.rank)
    return {
        "element": element,
        "array_task_id": ctx.array_task_id,
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "host": socket.gethostname(),
        "meeting": (ctx.master_addr, ctx.master_port),
    }


#: Every rank joins one gloo process group and all-reduces ``rank + 1`` (the example's).
torch_allreduce = all_reduce.with_options(nodes=2, ntasks_per_node=2)


@task(time="00:02:00", mem="64M", cache=True)
def cached_square(x: int) -> int:
    return x * x


@workflow(time="00:05:00", mem="256M")
def square_in_workflow(x: int, ctx: WorkflowContext) -> dict[str, Any]:
    """Calls the cached task from the workflow's node: the client's result is seen there."""
    job = cached_square(x)
    return {
        "value": job.get_result(timeout=120),
        "cached_from": job.cached.job_id if job.cached is not None else None,
    }


@task(time="00:02:00", mem="64M")
def packed_step(i: int, log: str, block: int, ctx: JobContext) -> int:
    """Note ``i restart`` in ``log``; call ``block`` waits to be preempted on its first run
    (it leaves ``log.blocked`` once it waits)."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"{i} {ctx.restart_count}\n")
    if i == block and ctx.restart_count == 0:
        Path(f"{log}.blocked").touch()
        time.sleep(110)
    return i


@task(time="00:01:00", mem="64M")
def until_requeued(i: int, ctx: JobContext) -> int:
    """Call 0 returns; call 1 waits, on its first run, until the time-limit warning
    interrupts it (it registers no checkpoint), and returns once requeued."""
    deadline = time.monotonic() + 240
    while i == 1 and ctx.restart_count == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return ctx.restart_count


@task(time="00:02:00", mem="64M")
def resume_after_preemption(workdir: str, ctx: JobContext) -> dict[str, Any]:
    """Works until preempted (TERM: checkpoint), resumes from the checkpoint once requeued."""
    from slurm._job.context import on_requeue

    checkpoint = Path(workdir) / "checkpoint.json"
    if checkpoint.exists():
        return {"resumed_from": json.loads(checkpoint.read_text()), "restart": ctx.restart_count}
    progress: dict[str, Any] = {"steps": 0, "python": sys.executable}
    on_requeue(lambda: checkpoint.write_text(json.dumps(progress)))
    while True:
        time.sleep(0.2)
        progress["steps"] += 1
        if progress["steps"] == 1:  # preempted from here on, there is progress to keep
            (Path(workdir) / "started").touch()
