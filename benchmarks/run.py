"""``make bench``: run every workload with every contender on the dev cluster, interleaved.

    python -m benchmarks.run [--quick] [--out benchmarks/results]

``--quick`` (``make bench-quick``) runs W1, W2, the batch row, W3 (50 items) and
the runner floor at small sizes, in about three minutes, into ``results/quick``.

W3 runs a map as one raw ``sbatch --array`` (baseline), as ``map`` (sdk), as
``map(pack="auto")`` (sdk-pack: a few elements of many calls each) and through
submitit's ``map_array``.

Each measurement is one fresh process (``benchmarks.contenders``); around it
the controller's counters are read (``sdiag``, ``sacctmgr show stats``, see
``benchmarks.slurmstats``). Before each one we wait (briefly) for other
users' jobs to leave the queue; a measurement during which the controller
restarted, someone else submitted, or foreign message types showed up is run
again once, and flagged if still noisy. Jobs left behind (found by their
output path under this run's temporary directory) are cancelled by id.

Writes ``latest.md`` (the table, also printed), ``latest.json`` (every raw
measurement) and ``latest.png`` to the output directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import slurmstats
from benchmarks.report import render_markdown, render_png
from slurm._wire.env import RUNNER_ENTRY

REPO = Path(__file__).resolve().parent.parent
QUIET_WAIT = 20.0  # seconds to wait for other users' jobs to leave the queue
FLOOR_REPS = 30


@dataclass(frozen=True)
class Spec:
    workload: str
    label: str  # contender as shown
    contender: str  # benchmarks.contenders name
    arg: str  # workload argument passed to it
    size: int
    tasks: int  # Slurm jobs (array elements) the workload runs
    submits: int  # sbatch calls expected (to spot someone else's submissions)
    timeout: float


@dataclass
class Measurement:
    workload: str
    contender: str
    rep: int
    wall: float | None = None
    cpu: float | None = None
    submit_phase: float | None = None
    commands: dict[str, int] = field(default_factory=dict)
    ctld: dict[str, int] = field(default_factory=dict)
    dbd: dict[str, int] = field(default_factory=dict)
    client_rpcs: int = 0
    daemon_rpcs: int = 0
    sacct_queries: int = 0
    tasks: int = 0
    sdk_controller_calls: int | None = None
    per_call_ms: float | None = None  # a pool's per-call overhead (Wcall)
    ok: bool = False
    noise: list[str] = field(default_factory=list)
    attempts: int = 1
    error: str = ""


def plan(w3_size: int, quick: bool) -> list[tuple[list[Spec], int]]:
    """(specs run side by side, repetitions) per workload."""
    w1 = 20 if quick else 100
    w3 = 50 if quick else w3_size

    def trio(w: str, arg: str, size: int, tasks: int, submits: int, timeout: float) -> list[Spec]:
        return [
            Spec(w, name, name, arg, size, tasks, submits, timeout)
            for name in ("baseline", "sdk", "submitit")
        ]

    batch = Spec("W1", "sdk-batch", "sdk", "W1batch", w1, w1, 1, 300)
    w3_rows = [
        *trio("W3", "W3", w3, w3, 1, 900),
        Spec("W3", "sdk-pack", "sdk", "W3pack", w3, w3, 1, 900),
    ]
    quick_plan = [
        ([*trio("W1", "W1", w1, w1, w1, 300), batch], 1 if quick else 2),
        (
            [
                *trio("W2", "W2", 10, 10, 10, 180),
                Spec("W2", "baseline-seq", "baseline", "W2seq", 10, 10, 10, 180),
            ],
            1 if quick else 3,
        ),
    ]
    if quick:  # make bench-quick: W1, W2, the batch row, W3 and the runner floor
        return [*quick_plan, (w3_rows, 1)]
    return [
        *quick_plan,
        (
            [
                *w3_rows,
                Spec("W3", "sdk-pool", "sdk", "W3pool", w3, w3, 1, 900),
            ],
            1,
        ),
        (
            [
                Spec("W5", "baseline", "baseline", "W5", 10_000, 10_000, 10, 1800),
                Spec("W5", "sdk-pool", "sdk", "W5pool", 10_000, 10_000, 1, 1800),
            ],
            1,
        ),
        ([Spec("Wcall", "sdk-pool", "sdk", "Wcall", 2000, 2000, 1, 600)], 1),
        (
            [
                Spec("W4", "baseline", "baseline", "W4", 0, 13, 13, 300),
                Spec("W4", "sdk", "sdk", "W4", 0, 13, 13, 300),
            ],
            1,
        ),
    ]


# --- the cluster -------------------------------------------------------------------------
def _out(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def max_array_size() -> int:
    for line in _out(["scontrol", "show", "config"]).splitlines():
        if line.strip().startswith("MaxArraySize"):
            return int(line.split("=", 1)[1].strip())
    return 1001


def queued_jobs() -> list[tuple[str, str]]:
    """(job id, stdout path) of every job in the queue, anyone's."""
    rows = []
    for line in _out(
        ["squeue", "--noheader", "--array", "-O", "JobID:40,STDOUT:1000"]
    ).splitlines():
        parts = line.split(None, 1)
        if parts:
            rows.append((parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return rows


def foreign_jobs(root: Path) -> list[str]:
    return [job for job, out in queued_jobs() if not out.startswith(str(root))]


def wait_quiet(root: Path, limit: float = QUIET_WAIT) -> list[str]:
    """Wait until nobody else has jobs queued and no client RPC arrives for a second."""
    deadline = time.monotonic() + limit
    while True:
        others = foreign_jobs(root)
        if not others:
            before = slurmstats.snapshot()
            time.sleep(1.0)
            if slurmstats.delta(before, slurmstats.snapshot()).client_total == 0:
                return []
        elif time.monotonic() > deadline:
            return others
        else:
            time.sleep(1.0)
        if time.monotonic() > deadline:
            return foreign_jobs(root)


def cancel_leftovers(root: Path) -> list[str]:
    """Cancel, by id, the jobs of this run still queued (their output is under ``root``)."""
    ids = sorted({job.split("_")[0] for job, out in queued_jobs() if out.startswith(str(root))})
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
    return ids


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    model = ""
    for line in _out(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    commit = _out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip()
    dirty = bool(_out(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"]).strip())
    node_cpus = [
        word.split("=", 1)[1]
        for word in _out(["scontrol", "show", "node"]).split()
        if word.startswith("CPUTot=")
    ]
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "slurm": _out(["sinfo", "-V"]).strip(),
        "nodes": len(node_cpus),
        "node_cpus": "+".join(node_cpus),
        "python": platform.python_version(),
        "sdk_commit": commit + ("+uncommitted src/" if dirty else ""),
    }


# --- one measurement -----------------------------------------------------------------------
def measure(spec: Spec, rep: int, root: Path) -> Measurement:
    m = Measurement(spec.workload, spec.label, rep, tasks=spec.tasks)
    run_root = root / f"{spec.workload}-{spec.label}-{rep}-{time.monotonic_ns()}"
    others_before = wait_quiet(root)
    before = slurmstats.snapshot()
    argv = [sys.executable, "-m", "benchmarks.contenders", spec.contender, spec.arg, str(spec.size)]
    try:
        proc = subprocess.run(
            [*argv, str(run_root)],
            capture_output=True,
            text=True,
            timeout=spec.timeout,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        m.error = f"timed out after {spec.timeout:.0f} s"
        proc = None
    after = slurmstats.snapshot()
    others_after = foreign_jobs(root)
    left = cancel_leftovers(root)
    if left:
        m.noise.append(f"cancelled {len(left)} left-over job(s)")
    if proc is not None:
        lines = proc.stdout.strip().splitlines()
        try:
            record = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            m.error = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        else:
            m.wall, m.cpu = record["wall"], record["cpu"]
            m.submit_phase = record.get("submit_phase")
            m.commands = record.get("commands", {})
            m.ok = bool(record.get("ok"))
            m.sdk_controller_calls = record.get("sdk_controller_calls")
            m.per_call_ms = record.get("per_call_ms")
            if record.get("job_dir"):
                m.commands["_job_dir"] = record["job_dir"]  # type: ignore[assignment]
            if not m.ok:
                m.error = "wrong result"
    d = slurmstats.delta(before, after)
    m.ctld, m.dbd = d.ctld, d.dbd
    m.client_rpcs, m.daemon_rpcs, m.sacct_queries = d.client_total, d.daemon_total, d.sacct_queries
    if d.reset:
        m.noise.append("controller restarted / stats reset")
    submits = d.ctld.get("REQUEST_SUBMIT_BATCH_JOB", 0)
    if submits != spec.submits:
        m.noise.append(f"{submits} submissions seen, {spec.submits} expected")
    if d.foreign:
        m.noise.append("foreign RPCs " + ",".join(f"{k}:{v}" for k, v in sorted(d.foreign.items())))
    if others_before or others_after:
        m.noise.append(f"{len(set(others_before) | set(others_after))} other job(s) in the queue")
    return m


#: The floor's runner, as a batch script starts it.
RUNNER = "python -P -c 'from slurm.runner import main; ...' JOBDIR (the batch script's)"


def measure_floor(job_dir: str, root: Path, reps: int = FLOOR_REPS) -> dict[str, Any]:
    """Per-task overhead inside the job: the runner on DIR, started as the batch script
    starts it (``python -P -c ...``, :data:`slurm._wire.env.RUNNER_ENTRY`), vs ``python -c pass``.

    Every run gets a fresh copy of a finished job's directory without its result
    (the runner refuses to run a job twice), made outside the timed part.
    """
    pristine = root / "floor-pristine"
    shutil.copytree(job_dir, pristine, ignore=shutil.ignore_patterns("result.*", "*.out", "*.err"))
    work = root / "floor-job"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    variants = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import slurm.runner'": [sys.executable, "-c", "import slurm._job.entry"],
        "python -c 'import slurm'": [sys.executable, "-c", "import slurm"],
        RUNNER: [sys.executable, "-P", *RUNNER_ENTRY, str(work)],
        "python -m slurm.runner JOBDIR": [sys.executable, "-P", "-m", "slurm.runner", str(work)],
    }

    def fresh() -> None:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)

    fresh()
    check = subprocess.run(
        variants[RUNNER], cwd=REPO, env=env, capture_output=True, text=True
    )
    if check.returncode != 0 or not (work / "result.pkl").exists():
        tail = check.stderr.strip()[-300:]
        return {"error": f"the runner failed on a copy of {job_dir}: rc {check.returncode} {tail}"}
    times: dict[str, list[float]] = {k: [] for k in variants}
    failures = 0
    for _ in range(reps):
        for name, argv in variants.items():
            fresh()
            t0 = time.perf_counter()
            done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True)
            times[name].append(time.perf_counter() - t0)
            failures += done.returncode != 0
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "reps": reps,
        "medians": medians,
        "overhead": medians[RUNNER] - medians["python -c pass"],
        "import_part": medians["python -c 'import slurm.runner'"] - medians["python -c pass"],
        "client_import": medians["python -c 'import slurm'"] - medians["python -c pass"],
        "failures": failures,
    }


# --- the whole run ---------------------------------------------------------------------------
def run(quick: bool, out_dir: Path) -> int:
    started = time.monotonic()
    info = machine()
    max_array = max_array_size()
    w3_size = min(1000, max_array)
    info["max_array_size"] = max_array
    info["w3_note"] = (
        "" if w3_size == 1000 else f"MaxArraySize={max_array}: W3 maps {w3_size} items, not 1000"
    )
    # Under $HOME, which every compute node shares; a node's /tmp is its own.
    scratch = Path.home() / ".cache" / "slurm-sdk" / "bench"
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    measurements: list[Measurement] = []
    floor: dict[str, Any] | None = None
    try:
        for specs, reps in plan(w3_size, quick):
            for rep in range(reps):
                order = specs[rep % len(specs) :] + specs[: rep % len(specs)]
                for spec in order:
                    m = measure(spec, rep, root)
                    attempts = 1
                    while (
                        _spoilt(m)
                        and attempts < 2
                        and spec.workload != "W3"
                        and time.monotonic() - started < 480
                    ):
                        print(f"  {spec.workload} {spec.label}: {m.noise or m.error}; again")
                        attempts += 1
                        m = measure(spec, rep, root)
                        m.attempts = attempts
                    measurements.append(m)
                    print(_line(m), flush=True)
        job_dir = next(
            (str(m.commands.get("_job_dir")) for m in measurements if m.commands.get("_job_dir")),
            None,
        )
        if job_dir:
            floor = measure_floor(job_dir, root, reps=10 if quick else FLOOR_REPS)
    finally:
        cancel_leftovers(root)
        shutil.rmtree(root, ignore_errors=True)
    info["duration_s"] = round(time.monotonic() - started)
    for m in measurements:
        m.commands.pop("_job_dir", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = {"machine": info, "floor": floor, "measurements": [asdict(m) for m in measurements]}
    (out_dir / "latest.json").write_text(json.dumps(raw, indent=1) + "\n")
    markdown = render_markdown(raw)
    (out_dir / "latest.md").write_text(markdown)
    render_png(raw, out_dir / "latest.png")
    print()
    print(markdown)
    return 0 if all(m.ok for m in measurements) else 1


def _spoilt(m: Measurement) -> bool:
    """Counts that cannot be trusted: a restart, someone else's submissions, a failure.
    (Other users' jobs merely sitting in the queue are flagged, not retried.)"""
    return bool(m.error) or any("restarted" in n or "submissions seen" in n for n in m.noise)


def _line(m: Measurement) -> str:
    wall = f"{m.wall:7.2f}s" if m.wall is not None else "    -   "
    cpu = f"{m.cpu:6.2f}s" if m.cpu is not None else "   -   "
    flags = "; ".join(m.noise + ([m.error] if m.error else []))
    return (
        f"{m.workload:3} {m.contender:13} rep {m.rep}: wall {wall} cpu {cpu} "
        f"client RPCs {m.client_rpcs:5} sacct {m.sacct_queries:4} {flags}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="W1, W2, the batch row, W3 and the floor; small sizes"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--replot", action="store_true", help="only redo latest.md and latest.png from latest.json"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.replot:
        raw = json.loads((args.out / "latest.json").read_text())
        (args.out / "latest.md").write_text(render_markdown(raw))
        render_png(raw, args.out / "latest.png")
        return 0
    return run(args.quick, args.out)


if __name__ == "__main__":
    sys.exit(main())
