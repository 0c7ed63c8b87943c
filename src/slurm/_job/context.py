"""What a running job knows about itself: :class:`JobContext`.

A task asks for it by annotating a parameter with ``JobContext``; the runner
fills it in on the compute node. ``current_job_context()`` returns the same
object from anywhere in the job's process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from slurm._types import TYPE_CHECKING
from slurm._wire.record import field, record

if TYPE_CHECKING:
    from typing import ClassVar, TypeVar

    T = TypeVar("T")

__all__ = [
    "JobContext",
    "current_job_context",
    "expand_hostlist",
    "on_requeue",
    "requeue_requested",
]


_current: JobContext | None = None


class _Flag:
    """Set once, read anywhere: what the runner needs of a :class:`threading.Event` (nothing
    waits on it), without importing :mod:`threading` at every job's start. A signal handler
    sets it in the main thread; a bool's assignment is atomic."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


#: Set once Slurm has warned this job (read by the runner's signal guard).
requeue_event = _Flag()
#: The checkpoint callbacks, in registration order (:func:`on_requeue`).
requeue_callbacks: list[Callable[[], object]] = []


def requeue_requested() -> bool:
    """True once Slurm has warned this job: preemption, or its time limit is near.

    Long loops can poll it to save a checkpoint at a safe point; the runner
    then requeues the job and the task is called again with the same
    arguments, to resume from that checkpoint.
    """
    return requeue_event.is_set()


def on_requeue(callback: Callable[[], T]) -> Callable[[], T]:
    """Register ``callback`` to run when the job is about to be requeued.

    Use it to write a checkpoint. Callbacks run in registration order in the
    main thread, right after the warning signal arrives and before the task is
    interrupted. Usable as a decorator; returns ``callback``.

    Example::

        @task(time="04:00:00", requeue_grace=120)
        def train(steps: int, workdir: str) -> float:
            state = load_or_init(workdir)
            on_requeue(lambda: save(state, workdir))
            ...
    """
    requeue_callbacks.append(callback)
    return callback


def expand_hostlist(text: str) -> list[str]:
    """Expand a Slurm host list such as ``node[01-03,7],gpu1`` into host names (a name with
    several bracketed ranges, ``rack[1-2]n[1-2]``, gives every combination)."""
    hosts: list[str] = []
    depth, start = 0, 0
    for at, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            if at > start:
                hosts += _expand_name(text[start:at])
            start = at + 1
    if start < len(text):  # the last name, even one whose bracket never closes
        hosts += _expand_name(text[start:])
    return hosts


def _expand_name(name: str) -> list[str]:
    opened = name.find("[")
    closed = name.find("]", opened + 1)
    if opened < 0 or closed < 0:
        return [name]
    prefix, ranges, rest = name[:opened], name[opened + 1 : closed], name[closed + 1 :]
    suffixes = _expand_name(rest) if rest else [""]
    names: list[str] = []
    for chunk in ranges.split(","):
        low, _, high = chunk.partition("-")
        numbers = [f"{n:0{len(low)}d}" for n in range(int(low), int(high) + 1)] if high else [low]
        names += [prefix + number + suffix for number in numbers for suffix in suffixes]
    return names


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        return default


@record(frozen=True)
class JobContext:
    """The Slurm facts of the running job: ids, ranks, hosts, rendezvous address."""

    #: A parameter annotated with this type is filled in by the runner (see inject).
    __slurm_inject__: ClassVar[str] = "job"

    job_id: str | None = None
    rank: int = 0
    local_rank: int = 0
    node_rank: int = 0
    world_size: int = 1
    num_nodes: int = 1
    hostnames: tuple[str, ...] = ()
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    output_dir: str | None = None
    array_task_id: int | None = None
    restart_count: int = 0
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, *, output_dir: str | None = None
    ) -> JobContext:
        """Build the context from ``SLURM_*`` variables (``os.environ`` by default)."""
        env = dict(os.environ if env is None else env)
        hostnames = tuple(expand_hostlist(env.get("SLURM_JOB_NODELIST", "")))
        if not hostnames:
            hostnames = (env.get("SLURMD_NODENAME") or os.uname().nodename,)
        job_id = env.get("SLURM_JOB_ID")
        port = 20000 + int(job_id) % 20000 if job_id and job_id.isdigit() else 29500
        array_id = env.get("SLURM_ARRAY_TASK_ID")
        return cls(
            job_id=job_id,
            rank=_int(env, "SLURM_PROCID", 0),
            local_rank=_int(env, "SLURM_LOCALID", 0),
            node_rank=_int(env, "SLURM_NODEID", 0),
            world_size=_int(env, "SLURM_NTASKS", 1),
            num_nodes=_int(env, "SLURM_JOB_NUM_NODES", len(hostnames)),
            hostnames=hostnames,
            master_addr=env.get("MASTER_ADDR", hostnames[0]),
            master_port=_int(env, "MASTER_PORT", port),
            output_dir=output_dir,
            array_task_id=int(array_id) if array_id and array_id.isdigit() else None,
            restart_count=_int(env, "SLURM_RESTART_COUNT", 0),
            environment={k: v for k, v in env.items() if k.startswith(("SLURM_", "SBATCH_"))},
        )

    @property
    def requeue_requested(self) -> bool:
        """See :func:`requeue_requested`."""
        return requeue_requested()

    def torch_distributed_env(self) -> dict[str, str]:
        """The variables ``torch.distributed.init_process_group("env://")`` reads."""
        return {
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
            "RANK": str(self.rank),
            "LOCAL_RANK": str(self.local_rank),
            "WORLD_SIZE": str(self.world_size),
            "NODE_RANK": str(self.node_rank),
        }


def current_job_context() -> JobContext | None:
    """The context of the job this process runs in, or ``None`` outside a job."""
    return _current


def set_current(context: JobContext | None) -> None:
    """Used by the runner: the context ``current_job_context()`` returns."""
    global _current
    _current = context
