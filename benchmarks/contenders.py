"""One workload by one contender, in a fresh process: ``python -m benchmarks.contenders
CONTENDER WORKLOAD SIZE ROOT``. Prints one JSON line with wall and CPU time.

The parent (``benchmarks.run``) reads the controller's counters around this
process, so each measurement has its own clean process: its imports, threads
and child processes (``sbatch``/``squeue``/``sacct``) are its own.

Contenders:

- ``sdk``: this package, local backend.
- ``baseline``: ``sbatch --parsable --wrap 'python -c ...'`` per task and
  ``squeue`` every 0.1 s until the jobs leave the queue; results through files.
- ``submitit``: submitit's SlurmExecutor on the same cluster (its defaults:
  ``srun`` inside the job, ``sacct`` to poll, 1 s result-file polling).
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTITION = "debug"
POLL = 0.1  # the baseline's squeue interval
PY = sys.executable

# --- every command this process starts, by name --------------------------------------
commands: Counter[str] = Counter()
_popen_init = subprocess.Popen.__init__


def _counting_init(self: subprocess.Popen[Any], args: Any, *a: Any, **kw: Any) -> None:
    argv = [args] if isinstance(args, str | bytes) else list(args)
    if kw.get("shell") and isinstance(args, str):
        argv = shlex.split(args)
    i = 0
    if argv and os.path.basename(str(argv[0])) == "env":  # the SDK's `env -u SLURM_X ... cmd`
        i = 1
        while i < len(argv) and str(argv[i]).startswith("-"):
            i += 1
    if i < len(argv):
        commands[os.path.basename(str(argv[i]))] += 1
    _popen_init(self, args, *a, **kw)


subprocess.Popen.__init__ = _counting_init  # type: ignore[method-assign]


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# --- baseline: sbatch + squeue ---------------------------------------------------------
def _sbatch(root: Path, code: str, *flags: str) -> str:
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--partition={PARTITION}",
            "--job-name=bench-baseline",
            f"--output={root}/%j.out",
            *flags,
            "--wrap",
            shlex.join([PY, "-c", code]),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().splitlines()[-1].split(";")[0]


def _wait_gone(job_ids: list[str]) -> None:
    """Poll squeue every POLL seconds until none of ``job_ids`` is listed."""
    while True:
        proc = subprocess.run(
            ["squeue", "--noheader", "--format=%i", f"--jobs={','.join(job_ids)}"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise RuntimeError(proc.stderr)
        if not proc.stdout.strip():
            return
        time.sleep(POLL)


def _write(path: Path, expr: str) -> str:
    return f"open({str(path)!r}, 'w').write(repr({expr}))"


def baseline(workload: str, n: int, root: Path, mark: Callable[[], None]) -> Any:
    if workload == "W1":
        ids = [_sbatch(root, _write(root / f"r{i}", str(i))) for i in range(n)]
        mark()
        _wait_gone(ids)
        return [int((root / f"r{i}").read_text()) for i in range(n)]
    if workload in ("W2", "W2seq"):
        ids: list[str] = []
        for i in range(n):
            src = "0" if i == 0 else f"int(open({str(root / f'r{i - 1}')!r}).read())"
            code = _write(root / f"r{i}", f"{src} + 1")
            if workload == "W2seq":  # submit when the previous one left squeue
                ids = [_sbatch(root, code)]
                _wait_gone(ids)
            else:
                flags = [f"--dependency=afterok:{ids[-1]}"] if ids else []
                ids.append(_sbatch(root, code, *flags))
        mark()
        _wait_gone(ids[-1:])
        return int((root / f"r{n - 1}").read_text())
    if workload == "W3":
        code = _write(root, "0")  # placeholder, replaced below
        code = (
            "import os; i = int(os.environ['SLURM_ARRAY_TASK_ID']); "
            f"open({str(root)!r} + f'/r{{i}}', 'w').write(repr(i))"
        )
        array_id = _sbatch(root, code, f"--array=0-{n - 1}", f"--output={root}/%A_%a.out")
        mark()
        _wait_gone([array_id])
        return [int((root / f"r{i}").read_text()) for i in range(n)]
    if workload == "W4":
        return _baseline_flow(root, mark)
    if workload == "W5":  # 10 ms calls as raw arrays (MaxArraySize elements each)
        code = (
            "import os, time; time.sleep(0.01); i = int(os.environ['SLURM_ARRAY_TASK_ID']); "
            "o = int(os.environ['BENCH_OFFSET']); "
            f"open({str(root)!r} + f'/r{{i + o}}', 'w').write(repr(i + o))"
        )
        size = int(os.environ.get("BENCH_MAX_ARRAY", "1000"))
        ids = []
        for start in range(0, n, size):
            count = min(size, n - start)
            os.environ["BENCH_OFFSET"] = str(start)
            ids.append(_sbatch(root, code, f"--array=0-{count - 1}", f"--output={root}/%A_%a.out"))
        mark()
        _wait_gone(ids)
        return [int((root / f"r{i}").read_text()) for i in range(n)]
    raise ValueError(workload)


def _baseline_flow(root: Path, mark: Callable[[], None]) -> Any:
    """The tutorial's shape with plain commands: an orchestrator job that submits
    capped training segments one after the other (sbatch + squeue polling) and
    an evaluation per epoch with afterok, then waits for the evaluations."""
    job = _sbatch(
        root,
        f"import sys; sys.argv = ['x', {str(root)!r}]; "
        "from benchmarks.contenders import baseline_flow_job; baseline_flow_job()",
        "--job-name=bench-baseline-flow",
    )
    mark()
    _wait_gone([job])
    return json.loads((root / "state.json").read_text())


def baseline_flow_job(epochs: int = 3, epoch_steps: int = 10, cap: int = 4) -> None:
    root = Path(sys.argv[1])
    evals = []
    for epoch in range(epochs):
        done = 0
        train = ""
        while done < epoch_steps:
            steps = min(cap, epoch_steps - done)
            out = root / f"train-{epoch}-{done}.json"
            state = {"steps_completed": done + steps, "checkpoint_path": str(root / "ckpt")}
            code = f"import json; json.dump({state!r}, open({str(out)!r}, 'w'))"
            train = _sbatch(root, code)
            _wait_gone([train])
            done = int(json.loads(out.read_text())["steps_completed"])
        code = f"import json; json.dump({epoch}, open({str(root / f'eval-{epoch}.json')!r}, 'w'))"
        evals.append(_sbatch(root, code, f"--dependency=afterok:{train}"))
    _wait_gone(evals)
    (root / "state.json").write_text(json.dumps({"evals": evals}))


# --- our SDK -------------------------------------------------------------------------------
def sdk(workload: str, n: int, root: Path, mark: Callable[[], None]) -> Any:
    from benchmarks.payloads import sdk_echo, sdk_inc, sdk_nap
    from slurm import Cluster

    cluster = Cluster(backend_type="local", job_base_dir=str(root), default_partition=PARTITION)
    extra: dict[str, Any] = {}
    try:
        with cluster:
            if workload == "W1":
                jobs = [sdk_echo(i) for i in range(n)]
                mark()
                value: Any = [job.get_result() for job in jobs]
                extra["job_dir"] = jobs[0].job_dir
            elif workload == "W1batch":  # the same calls, collected into one array
                with cluster.batch():
                    jobs = [sdk_echo(i) for i in range(n)]
                mark()
                value = [job.get_result() for job in jobs]
            elif workload == "W2":
                job = sdk_inc(0)
                for _ in range(n - 1):
                    job = sdk_inc(job)
                mark()
                value = job.get_result()
            elif workload == "W3":
                array = sdk_echo.map(list(range(n)))
                mark()
                value = array.get_results()
            elif workload == "W3pack":  # the same map, packed: a few elements of many calls
                array = sdk_echo.map(list(range(n)), pack="auto")
                mark()
                value = array.get_results()
                extra["elements"] = len({job.id for job in array})
            elif workload in ("W3pool", "W5pool"):  # the same calls in a pool of 4 workers
                call = sdk_echo if workload == "W3pool" else sdk_nap
                with cluster.pool(workers=4, idle_timeout=5, time="00:30:00") as pool:
                    array = call.map(list(range(n)))
                    mark()
                value = array.get_results()
                extra["pool_commands"] = pool.commands
                extra["pool_workers"] = len(pool.worker_ids)
            elif workload == "Wcall":  # per-call overhead: trivial calls through one worker
                with cluster.pool(workers=1, idle_timeout=5, time="00:30:00"):
                    array = sdk_echo.map(list(range(n)))
                    mark()
                value = array.get_results()
                ended = sorted(os.stat(job.result_path).st_mtime for job in array)
                extra["per_call_ms"] = (ended[-1] - ended[0]) / (n - 1) * 1000
            elif workload == "W4":
                from slurm.examples.parallel_train_eval.workflow import (
                    parallel_train_eval_workflow,
                )

                job = parallel_train_eval_workflow(
                    epochs=3,
                    epoch_steps=10,
                    steps_per_job_cap=4,
                    partition_train=None,
                    partition_eval=None,
                )
                mark()
                value = job.get_result()
            else:
                raise ValueError(workload)
            extra["sdk_controller_calls"] = cluster.tracker.controller_calls
    finally:
        cluster.close()
    return value, extra


# --- submitit --------------------------------------------------------------------------------
def submitit_run(workload: str, n: int, root: Path, mark: Callable[[], None]) -> Any:
    import submitit

    from benchmarks.payloads import echo, inc, inc_submitit_result

    executor = submitit.SlurmExecutor(folder=str(root / "%j"))
    executor.update_parameters(partition=PARTITION, time=5, job_name="bench-submitit")
    if workload == "W1":
        jobs = [executor.submit(echo, i) for i in range(n)]
        mark()
        return [job.result() for job in jobs]
    if workload == "W2":
        job = executor.submit(inc, 0)
        for _ in range(n - 1):
            executor.update_parameters(
                additional_parameters={"dependency": f"afterok:{job.job_id}"}
            )
            job = executor.submit(inc_submitit_result, str(job.paths.result_pickle))
        mark()
        return job.result()
    if workload == "W3":
        executor.update_parameters(array_parallelism=n)
        jobs = executor.map_array(echo, list(range(n)))
        mark()
        return [job.result() for job in jobs]
    raise ValueError(workload)


CONTENDERS = {"sdk": sdk, "baseline": baseline, "submitit": submitit_run}


def expected(workload: str, n: int) -> Any:
    if workload in ("W1", "W1batch", "W3", "W3pack", "W3pool", "W5", "W5pool", "Wcall"):
        return list(range(n))
    if workload in ("W2", "W2seq"):
        return n
    return None


def main() -> int:
    contender, workload, size, root_text = sys.argv[1:5]
    n = int(size)
    root = Path(root_text)
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(Path(__file__).resolve().parent.parent)  # jobs import `benchmarks` from here
    marks: list[float] = []
    cpu0 = _cpu()
    t0 = time.perf_counter()
    outcome = CONTENDERS[contender](workload, n, root, lambda: marks.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    value, extra = outcome if contender == "sdk" else (outcome, {})
    want = expected(workload, n)
    ok = want is None or value == want
    if workload == "W4":
        ok = bool(value)
    record = {
        "wall": wall,
        "cpu": cpu,
        "submit_phase": (marks[0] - t0) if marks else None,
        "commands": dict(commands),
        "ok": ok,
        **extra,
    }
    print(json.dumps(record), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
