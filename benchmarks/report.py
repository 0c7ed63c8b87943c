"""The benchmark's table (markdown) and chart (PNG) from its raw measurements."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.slurmstats import DAEMON_TYPES, MEASUREMENT_TYPES

CONTENDERS = ("sdk", "sdk-batch", "sdk-pack", "sdk-pool", "baseline", "baseline-seq", "submitit")
COLORS = {
    "sdk": "#1f77b4",
    "sdk-batch": "#17becf",
    "sdk-pack": "#bcbd22",
    "sdk-pool": "#2ca02c",
    "baseline": "#7f7f7f",
    "baseline-seq": "#c7c7c7",
    "submitit": "#ff7f0e",
}
WORKLOADS = {
    "W1": "W1: {n} independent tasks",
    "W2": "W2: chain of {n}",
    "W3": "W3: map over {n} items",
    "W4": "W4: tutorial workflow",
    "W5": "W5: {n} calls of 10 ms",
    "Wcall": "per-call overhead: {n} trivial calls through one pool worker",
}


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (workload, contender): medians over repetitions."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in raw["measurements"]:
        groups.setdefault((m["workload"], m["contender"]), []).append(m)
    rows = []
    for workload in WORKLOADS:
        for contender in CONTENDERS:
            ms = groups.get((workload, contender))
            if not ms:
                continue
            good = [m for m in ms if m["ok"]] or ms
            wall = _median([m["wall"] for m in good])
            # The repetition whose wall time is the median one stands for the run's details.
            typical = min(good, key=lambda m: abs((m["wall"] or 0) - (wall or 0)))
            tasks = typical["tasks"]
            ctld = _median([m["client_rpcs"] for m in good]) or 0
            dbd = _median([m["sacct_queries"] for m in good]) or 0
            rows.append(
                {
                    "workload": workload,
                    "contender": contender,
                    "tasks": tasks,
                    "wall": wall,
                    "walls": [m["wall"] for m in ms],
                    "cpu": _median([m["cpu"] for m in good]),
                    "submit_phase": _median([m["submit_phase"] for m in good]),
                    "ctld": ctld,
                    "dbd": dbd,
                    "ctld_per_task": ctld / tasks if tasks else None,
                    "all_per_task": (ctld + dbd) / tasks if tasks else None,
                    "commands": typical["commands"],
                    "types": typical["ctld"],
                    "daemon": typical["daemon_rpcs"],
                    "sdk_calls": typical.get("sdk_controller_calls"),
                    "per_call_ms": typical.get("per_call_ms"),
                    "reps": len(ms),
                    "ok": all(m["ok"] for m in ms),
                    "flags": sorted(
                        {f for m in ms for f in m["noise"]} | {m["error"] for m in ms if m["error"]}
                    ),
                }
            )
    return rows


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _find(rows: list[dict[str, Any]], workload: str, contender: str) -> dict[str, Any] | None:
    return next(
        (r for r in rows if r["workload"] == workload and r["contender"] == contender), None
    )


def _size(rows: list[dict[str, Any]], workload: str) -> int:
    row = next((r for r in rows if r["workload"] == workload), None)
    return row["tasks"] if row else 0


def targets(rows: list[dict[str, Any]], floor: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "**no**")

    sdk2, base2, seq2 = (
        _find(rows, "W2", "sdk"),
        _find(rows, "W2", "baseline"),
        _find(rows, "W2", "baseline-seq"),
    )
    if sdk2 and base2 and sdk2["wall"] and base2["wall"]:
        ratio = sdk2["wall"] / base2["wall"]
        text = f"{ratio:.2f}x the afterok chain"
        if seq2 and seq2["wall"]:
            text += f"; {sdk2['wall'] / seq2['wall']:.2f}x the submit-when-gone chain"
        out.append(("W2 wall within 1.3x of the baseline chain", text, verdict(ratio <= 1.3)))
    for w, limit, what in (
        ("W1", 1.3, "the sbatch+squeue baseline"),
        ("W3", 1.15, "one `sbatch --array`"),
    ):
        ours, base = _find(rows, w, "sdk"), _find(rows, w, "baseline")
        if ours and base and ours["wall"] and base["wall"]:
            ratio = ours["wall"] / base["wall"]
            out.append((f"{w} wall <= {limit}x {what}", f"{ratio:.2f}x", verdict(ratio <= limit)))
    sdk1 = _find(rows, "W1", "sdk")
    if sdk1:
        out.append(
            (
                "W1 client RPCs <= 1.2 per task",
                f"{sdk1['ctld_per_task']:.2f} slurmctld (+{sdk1['dbd'] / sdk1['tasks']:.2f} sacct)",
                verdict(sdk1["ctld_per_task"] <= 1.2),
            )
        )
    batch1 = _find(rows, "W1", "sdk-batch")
    if sdk1 and batch1 and batch1["cpu"] is not None and sdk1["cpu"]:
        share = batch1["cpu"] / sdk1["cpu"]
        out.append(
            (
                "W1 in a batch: <= 0.05 client RPCs per task, <= 1/5 of the unbatched CPU",
                f"{batch1['ctld_per_task']:.3f} RPCs per task; CPU {share:.2f}x unbatched",
                verdict(batch1["ctld_per_task"] <= 0.05 and share <= 0.2),
            )
        )
    pack3, base3 = _find(rows, "W3", "sdk-pack"), _find(rows, "W3", "baseline")
    if pack3 and base3 and pack3["wall"] and base3["wall"]:
        ratio = pack3["wall"] / base3["wall"]
        out.append(
            (
                'W3 map(pack="auto") <= 0.25x one `sbatch --array`',
                f"{ratio:.2f}x",
                verdict(ratio <= 0.25),
            )
        )
    sdk3 = _find(rows, "W3", "sdk")
    if sdk3:
        out.append(
            (
                "W3 client RPCs <= 0.01 per item",
                f"{sdk3['ctld_per_task']:.3f} slurmctld (+{sdk3['dbd'] / sdk3['tasks']:.3f} sacct)",
                verdict(sdk3["ctld_per_task"] <= 0.01),
            )
        )
    for w, limit in (("W3", 0.1), ("W5", 0.1)):
        pool, base = _find(rows, w, "sdk-pool"), _find(rows, w, "baseline")
        if pool and base and pool["wall"] and base["wall"]:
            ratio = pool["wall"] / base["wall"]
            rpcs = pool["ctld_per_task"]
            out.append(
                (
                    f"{w} in a pool of 4 <= {limit}x the raw array(s); <= 0.01 client RPCs per call",
                    f"{ratio:.3f}x; {rpcs:.4f} RPCs per call",
                    verdict(ratio <= limit and rpcs <= 0.01),
                )
            )
    call = _find(rows, "Wcall", "sdk-pool")
    if call and call.get("per_call_ms") is not None:
        ms = call["per_call_ms"]
        out.append(("per-call overhead in a pool <= 5 ms", f"{ms:.2f} ms", verdict(ms <= 5)))
    for w in ("W1", "W2", "W3"):
        ours, theirs = _find(rows, w, "sdk"), _find(rows, w, "submitit")
        if not (ours and theirs):
            continue
        figures = {
            "wall": (ours["wall"], theirs["wall"]),
            "CPU": (ours["cpu"], theirs["cpu"]),
            "RPCs+sacct": (ours["ctld"] + ours["dbd"], theirs["ctld"] + theirs["dbd"]),
        }
        behind = [k for k, (a, b) in figures.items() if a is not None and b is not None and a > b]
        text = ", ".join(f"{k} {_f(a)} vs {_f(b)}" for k, (a, b) in figures.items())
        out.append((f"{w}: ahead of submitit on every figure", text, verdict(not behind)))
    if floor and "error" in floor:
        out.append(("runner overhead beyond `python -c pass` <= 15 ms", floor["error"], "-"))
    elif floor:
        ms = floor["overhead"] * 1000
        out.append(
            (
                "runner overhead beyond `python -c pass` <= 15 ms",
                f"{ms:.0f} ms (importing slurm._job.entry: {floor['import_part'] * 1000:.0f} ms)",
                verdict(ms <= 15),
            )
        )
        if "client_import" in floor:
            ms = floor["client_import"] * 1000
            out.append(("`import slurm` on the client <= 50 ms", f"{ms:.0f} ms", verdict(ms <= 50)))
    return out


def render_markdown(raw: dict[str, Any]) -> str:
    info, floor = raw["machine"], raw.get("floor")
    rows = summarize(raw)
    lines = [
        "# slurm-sdk benchmarks",
        "",
        f"{info['date']}; {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gb']} GB RAM; "
        f"{info['slurm']} dev cluster of {info.get('nodes', 1)} compute node(s) "
        f"({info['node_cpus']} CPUs advertised, "
        f"MaxArraySize {info['max_array_size']}); Python {info['python']}; "
        f"SDK {info['sdk_commit']}; run took {info['duration_s']} s (`make bench`).",
        "",
        "Median over repetitions (reps). Wall: submission of the first job to the last result "
        "in hand. CPU: the client process and its children (sbatch, squeue, sacct). "
        "RPCs: slurmctld RPCs sent by client commands (sdiag, daemons' own messages left out); "
        "sacct: queries to slurmdbd (sacct does not talk to slurmctld).",
        "",
        "| Workload | Contender | Wall s | CPU s | RPCs | RPCs/task | sacct | (RPCs+sacct)/task "
        "| squeue/sacct/sbatch runs | reps |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        c = r["commands"]
        runs = f"{c.get('squeue', 0)}/{c.get('sacct', 0)}/{c.get('sbatch', 0)}"
        name = WORKLOADS[r["workload"]].format(n=r["tasks"])
        mark = ("" if r["ok"] else " (FAILED)") + (" †" if r["flags"] else "")
        lines.append(
            f"| {name} | {r['contender']}{mark} | {_f(r['wall'])} | {_f(r['cpu'])} "
            f"| {r['ctld']:.0f} | {_f(r['ctld_per_task'], 3)} | {r['dbd']:.0f} "
            f"| {_f(r['all_per_task'], 3)} | {runs} | {r['reps']} |"
        )
    lines += [
        "",
        "## Targets (figures, not assertions)",
        "",
        "| Target | Figure | Met |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(rows, floor)]
    if floor and "medians" in floor:
        lines += [
            "",
            "## Per-task floor inside the job",
            "",
            f"Median of {floor['reps']} interleaved runs on this machine, outside Slurm:",
            "",
        ]
        lines += [f"- `{k}`: {v * 1000:.0f} ms" for k, v in floor["medians"].items()]
    lines += [
        "",
        "## Where the time and the RPCs go",
        "",
        "| Workload | Contender | submit phase s | wall per rep s | slurmctld client RPCs by type "
        "| daemon RPCs | SDK tracker calls |",
        "|---|---|---:|---|---|---:|---:|",
    ]
    for r in rows:
        types = ", ".join(
            f"{k.removeprefix('REQUEST_')} {v}"
            for k, v in sorted(r["types"].items(), key=lambda kv: -kv[1])
            if k not in _HIDDEN
        )
        walls = " / ".join(_f(w, 1) for w in r["walls"])
        sdk_calls = "-" if r["sdk_calls"] is None else str(r["sdk_calls"])
        lines.append(
            f"| {r['workload']} | {r['contender']} | {_f(r['submit_phase'])} | {walls} | {types} "
            f"| {r['daemon']} | {sdk_calls} |"
        )
    flagged = [r for r in rows if r["flags"]]
    lines += ["", "## Notes", ""]
    lines += [
        "- Contenders: **sdk** is this package (local backend); **sdk-batch** the same W1 "
        "calls made inside `with cluster.batch():` (one array); **sdk-pack** the W3 map with "
        '`pack="auto"` (about one array element per free CPU, each running many calls in one '
        "Python process); **baseline** is `sbatch "
        "--parsable --wrap 'python -c ...'` per task with `squeue` every 0.1 s until the jobs "
        "leave the queue, "
        "results through files (W2: the whole chain submitted at once with `--dependency=afterok`; "
        "**baseline-seq**: each link submitted when the previous one left squeue; W3: one "
        "`sbatch --array`; W4: an orchestrator job doing the tutorial's 9 training segments and 3 "
        "evaluations with the same commands); **submitit** is submitit's SlurmExecutor with its "
        "defaults (the job runs through `srun`, state comes from `sacct`), W2 chained with "
        "`afterok` and each link reading the previous result pickle, W3 through `map_array`.",
        "- Client RPC types: REQUEST_SUBMIT_BATCH_JOB (sbatch); REQUEST_JOB_INFO + "
        "REQUEST_PARTITION_INFO (squeue for several ids: the whole job table); "
        "REQUEST_JOB_INFO_SINGLE + REQUEST_FED_INFO + REQUEST_PARTITION_INFO (squeue for one "
        "id); REQUEST_KILL_JOB (scancel); REQUEST_HET_JOB_ALLOC_INFO + REQUEST_JOB_STEP_CREATE "
        "(srun inside submitit's jobs). "
        "Left out as the daemons' own: " + ", ".join(sorted(_DAEMON)) + ". Left out as the "
        "measurement's: REQUEST_STATS_INFO. A workflow's children are submitted from the node: "
        "their sbatch/squeue count as the SDK's load.",
        "- Each measurement runs in a fresh process; contenders interleave, their order rotating "
        "between repetitions. The cluster is shared with whoever else uses it: a measurement "
        "during which the controller restarted or someone else submitted is run once more; "
        "flags below say what was still seen.",
        "- Byte code is written and used (`make bench` unsets `PYTHONDONTWRITEBYTECODE`), as "
        "on a user's machine: every contender's jobs import compiled modules after the first. "
        "Jobs and their files live under `~/.cache/slurm-sdk/bench/`, which every compute node "
        "of the dev cluster shares.",
    ]
    if info.get("w3_note"):
        lines.append(f"- {info['w3_note']}.")
    if flagged:
        lines.append(
            "- † the cluster was not ours alone during some repetition (RPC counts may include "
            "other users' messages):"
        )
    for r in flagged:
        lines.append(f"  - {r['workload']} {r['contender']}: " + "; ".join(r["flags"]))
    return "\n".join(lines) + "\n"


_DAEMON = DAEMON_TYPES
_HIDDEN = DAEMON_TYPES | MEASUREMENT_TYPES


def render_png(raw: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rows = summarize(raw)
    info = raw["machine"]
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    contenders = [c for c in CONTENDERS if any(r["contender"] == c for r in rows)]
    panels = [
        ("wall", "Wall time (s, log)", "{:.1f}"),
        ("cpu", "Client CPU time (s, log)", "{:.2f}"),
        ("all_per_task", "Client RPCs per task: slurmctld + sacct (log)", "{:.2g}"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    width = 0.8 / len(contenders)
    for ax, (key, title, fmt) in zip(axes, panels, strict=True):
        for i, contender in enumerate(contenders):
            xs, ys = [], []
            for j, w in enumerate(workloads):
                r = _find(rows, w, contender)
                if r and r[key]:
                    xs.append(j + (i - (len(contenders) - 1) / 2) * width)
                    ys.append(r[key])
            bars = ax.bar(
                xs,
                ys,
                width,
                label=contender,
                color=COLORS[contender],
                edgecolor="black",
                linewidth=0.5,
            )
            if key == "all_per_task":  # the slurmctld part, solid; sacct on top, hatched
                ctld = [
                    _find(rows, w, contender)["ctld_per_task"]  # type: ignore[index]
                    for w in workloads
                    if _find(rows, w, contender) and _find(rows, w, contender)[key]  # type: ignore[index]
                ]
                for bar, c_val in zip(bars, ctld, strict=True):
                    if c_val < bar.get_height():
                        ax.bar(
                            bar.get_x() + width / 2,
                            bar.get_height() - c_val,
                            width,
                            bottom=c_val,
                            color="white",
                            edgecolor=COLORS[contender],
                            hatch="///",
                            linewidth=0.5,
                        )
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(
                    fmt.format(y),
                    (x, y),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(
            FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}".lstrip("0.")[:1] in ("2", "5") else "")
        )
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(
            [WORKLOADS[w].format(n=_size(rows, w)).replace(": ", ":\n") for w in workloads],
            fontsize=8,
        )
        ax.margins(y=0.25)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[2].text(
        0.98,
        0.98,
        "hatched: sacct queries (slurmdbd)",
        transform=axes[2].transAxes,
        ha="right",
        va="top",
        fontsize=7,
    )
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"slurm-sdk vs plain sbatch+squeue vs submitit; {info['date']}, {info['nproc']} CPUs, "
        f"{info['memory_gb']} GB, {info['slurm']} dev cluster (lower is better)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
