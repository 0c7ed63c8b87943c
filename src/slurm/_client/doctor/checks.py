"""The doctor's checks as data, the script it runs on the cluster, and pure parsers/renderers.

See :mod:`slurm._client.doctor` for what is checked and how it runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "CHECK_NAMES",
    "Check",
    "DoctorReport",
    "Partition",
    "build_script",
    "containers_check",
    "disk_check",
    "owner_check",
    "parse_df",
    "parse_partitions",
    "parse_sections",
    "partitions_check",
    "render_text",
    "skew_check",
]

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
#: Every check, in report order (python_* and shell lines appear after python on failure).
CHECK_NAMES = (
    "connectivity",
    "authentication",
    "slurm_commands",
    "controller",
    "accounting",
    "partitions",
    "python",
    "shipping",
    "base_dir",
    "free_space",
    "clock",
    "containers",
)
EXTRA_COMMANDS = ("sinfo", "sacct")
LOW_SPACE_MB = 1024  # warn below this much free space in the job base directory
NO_SPACE_MB = 64  # fail below this: payloads, results and logs will not fit
SKEW_WARN_S = 30.0  # one-time codes, squeue/sacct times and file ages drift apart


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was seen, what to do."""

    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""
    blocking: bool = False  # a failure that stops submission


@dataclass(frozen=True)
class Partition:
    """A partition as ``scontrol show partition -o`` describes it."""

    name: str
    state: str
    default: bool
    max_time: str
    max_nodes: str
    total_nodes: str
    total_cpus: str
    max_mem_per_node: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class DoctorReport:
    """Every check, in order, plus the facts behind them."""

    where: str
    backend: str
    checks: list[Check]
    partitions: list[Partition] = field(default_factory=list)
    preflight: dict[str, Any] | None = None
    clock_skew_s: float | None = None

    @property
    def blocking(self) -> list[Check]:
        """The checks that stop submission."""
        return [c for c in self.checks if c.status == FAIL and c.blocking]

    @property
    def ok(self) -> bool:
        """Whether nothing blocks submission (warnings allowed)."""
        return not self.blocking

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: ``ok``, ``checks`` (a list), ``problems`` and the facts."""
        preflight = self.preflight or {}
        return {
            "where": self.where,
            "backend": self.backend,
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "problems": [f"{c.name}: {c.detail}. {c.fix}".strip() for c in self.blocking],
            "warnings": [
                f"{c.name}: {c.detail}. {c.fix}".strip()
                for c in self.checks
                if c.status == WARN or (c.status == FAIL and not c.blocking)
            ],
            "partitions": [asdict(p) for p in self.partitions],
            "python": preflight.get("python"),
            "python_version": preflight.get("python_version"),
            "uv": preflight.get("uv"),
            "runtimes": preflight.get("runtimes") or {},
            "packaging": preflight.get("packaging"),
            "job_base_dir": preflight.get("job_base_dir"),
            "environment": preflight.get("environment"),
            "clock_skew_seconds": self.clock_skew_s,
        }


# --- the script and its parsers (pure) ------------------------------------------------


def build_script(base_dir: str) -> str:
    """The shell script run on the cluster: sections ``@@begin NAME`` .. ``@@end NAME RC``."""
    b = shlex.quote(base_dir)

    def section(name: str, command: str) -> list[str]:
        return [f"echo '@@begin {name}'", f"( {command} ) 2>&1", f'echo "@@end {name} $?"']

    lines = ["echo '@@begin clock'", "date +%s.%N", 'echo "@@end clock $?"']
    lines += section("user", "id -un")
    for command in EXTRA_COMMANDS:
        lines += section(f"cmd_{command}", f"command -v {command}")
    lines += section("ping", "scontrol ping")
    lines += section("accounting", "sacct -n -X -P -S now-1minutes -o JobID | head -n 1")
    lines += section("partitions", "scontrol show partition -o")
    lines += section("owner", f"stat -c '%U %a' -- {b}")
    lines += section("df", f"df -Pk -- {b}")
    return "\n".join(lines) + "\n"


def parse_sections(stdout: str) -> dict[str, tuple[int, str]]:
    """``{name: (exit code, output)}`` from the script's output; a cut-off section has code -1."""
    sections: dict[str, tuple[int, str]] = {}
    name: str | None = None
    body: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("@@begin "):
            name, body = line[len("@@begin ") :].strip(), []
        elif line.startswith("@@end ") and name is not None:
            _, _, code = line[len("@@end ") :].partition(" ")
            sections[name] = (
                int(code) if code.strip().lstrip("-").isdigit() else -1,
                "\n".join(body),
            )
            name = None
        elif name is not None:
            body.append(line)
    if name is not None:
        sections[name] = (-1, "\n".join(body))
    return sections


def parse_partitions(text: str) -> list[Partition]:
    """Partitions from ``scontrol show partition -o`` (one ``Key=Value ...`` line each)."""
    partitions = []
    for line in text.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        name = fields.pop("PartitionName", "")
        if not name:
            continue
        partitions.append(
            Partition(
                name=name,
                state=fields.pop("State", "?"),
                default=fields.pop("Default", "NO") == "YES",
                max_time=fields.pop("MaxTime", "?"),
                max_nodes=fields.pop("MaxNodes", "?"),
                total_nodes=fields.pop("TotalNodes", "?"),
                total_cpus=fields.pop("TotalCPUs", "?"),
                max_mem_per_node=fields.pop("MaxMemPerNode", "?"),
                extra=fields,
            )
        )
    return partitions


def parse_df(text: str) -> tuple[int, int] | None:
    """``(available MB, size MB)`` from ``df -Pk`` output, ``None`` if unreadable."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    if len(fields) < 6 or not (fields[1].isdigit() and fields[3].isdigit()):
        return None
    return int(fields[3]) // 1024, int(fields[1]) // 1024


def partitions_check(partitions: list[Partition], wanted: str | None, where: str) -> Check:
    """One line for every partition and its limits; fails if ``wanted`` is not usable."""
    if not partitions:
        return Check(
            "partitions",
            FAIL,
            f"no partition is visible on {where}",
            "ask the cluster's admins which partition you may use",
            blocking=True,
        )
    shown = ", ".join(
        f"{p.name}{'*' if p.default else ''} ({p.state.lower()}, time {p.max_time.lower()}, "
        f"nodes {p.max_nodes.lower()}, {p.total_cpus} CPUs on {p.total_nodes} node(s))"
        for p in partitions
    )
    names = {p.name: p for p in partitions}
    if wanted and wanted not in names:
        return Check(
            "partitions",
            FAIL,
            f"the default partition {wanted!r} does not exist; there are: {shown}",
            f"set default_partition (--partition) to one of {sorted(names)}",
            blocking=True,
        )
    down = [p.name for p in partitions if p.state.upper() != "UP"]
    if wanted and wanted in down:
        return Check(
            "partitions",
            FAIL,
            f"the default partition {wanted!r} is {names[wanted].state}; {shown}",
            "jobs would wait until it is UP: pick another partition or ask the admins",
            blocking=True,
        )
    if down:
        return Check("partitions", WARN, shown, f"not UP: {', '.join(down)}; jobs sent there wait")
    return Check("partitions", OK, shown)


def owner_check(text: str, code: int, user: str, base_dir: str) -> Check:
    """Base directory owner and mode from ``stat -c '%U %a'``."""
    fields = text.split()
    if code != 0 or len(fields) != 2:
        return Check(
            "base_dir",
            FAIL,
            f"cannot stat {base_dir!r}: {text.strip() or 'no output'}",
            "pass job_base_dir= (--job-base-dir) a directory you own",
            blocking=True,
        )
    owner, mode_text = fields
    if user and owner != user:
        return Check(
            "base_dir",
            FAIL,
            f"{base_dir} belongs to {owner!r}, not to you ({user!r}): "
            "whoever owns it can change your jobs' code and results",
            "use a job_base_dir of your own (e.g. under your home or scratch)",
            blocking=True,
        )
    mode = int(mode_text, 8)
    if mode & 0o022 and not mode & 0o1000:
        return Check(
            "base_dir",
            WARN,
            f"{base_dir} (mode {mode_text}) is writable by others, who could replace your "
            "jobs' records",
            f"chmod go-w {shlex.quote(base_dir)}",
        )
    return Check("base_dir", OK, f"{base_dir} (yours, mode {mode_text})")


def disk_check(text: str, code: int, base_dir: str) -> Check:
    """Free space where the job directories go, from ``df -Pk``."""
    sizes = parse_df(text) if code == 0 else None
    if sizes is None:
        return Check(
            "free_space",
            WARN,
            f"cannot read the free space of {base_dir}: {text.strip() or 'no output'}",
            "check `df -Pk` works there",
        )
    free, total = sizes
    detail = f"{free} MB free of {total} MB in {base_dir}"
    if free < NO_SPACE_MB:
        return Check(
            "free_space",
            FAIL,
            detail,
            "free space there, or use another job_base_dir (--job-base-dir)",
            blocking=True,
        )
    if free < LOW_SPACE_MB:
        return Check(
            "free_space",
            WARN,
            detail,
            "results and logs may not fit: free space or use another job_base_dir",
        )
    return Check("free_space", OK, detail)


def skew_check(remote_text: str, sent: float, received: float) -> tuple[Check, float | None]:
    """Clock skew from the cluster's ``date +%s.%N`` against the round trip's midpoint."""
    try:
        seconds, _, fraction = remote_text.strip().partition(".")
        # A date without %N (busybox) prints the format letter itself.
        remote = float(f"{seconds}.{fraction}" if fraction.isdigit() else seconds)
    except ValueError:
        return Check(
            "clock",
            WARN,
            f"cannot read the cluster's clock ({remote_text.strip()!r})",
            "check `date +%s` works there",
        ), None
    skew = remote - (sent + received) / 2
    detail = f"cluster clock {skew:+.1f} s from this machine's (±{(received - sent) / 2:.1f} s)"
    if abs(skew) > SKEW_WARN_S:
        return Check(
            "clock",
            WARN,
            detail,
            "synchronise this machine's clock (NTP): one-time codes and job times depend on it",
        ), skew
    return Check("clock", OK, detail), skew


def containers_check(runtimes: Mapping[str, str]) -> Check:
    """Which container runtimes the cluster has, as the preflight found them (its
    ``runtimes``: pyxis when ``srun`` knows ``--container-image``, Apptainer's version);
    never blocking: tasks without images need none."""
    found = []
    if "pyxis" in runtimes:
        found.append("pyxis (srun --container-image)")
    if "apptainer" in runtimes:
        found.append(f"apptainer {runtimes['apptainer']}")
    if not found:
        return Check(
            "containers",
            WARN,
            "no container runtime: srun has no --container-image (pyxis) and there is no "
            "`apptainer` on the PATH",
            "tasks with container_image= are refused; ask the admins for pyxis or Apptainer",
        )
    auto = "pyxis" if found[0].startswith("pyxis") else "apptainer"
    return Check("containers", OK, f"{', '.join(found)}; container_runtime='auto' takes {auto}")


def render_text(report: DoctorReport) -> str:
    """One line a check (``ok``/``WARN``/``FAIL``/``skip``), the fix after each failure."""
    marks = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}
    width = max((len(c.name) for c in report.checks), default=0)
    lines = [f"slurm doctor: {report.where} ({report.backend})"]
    for c in report.checks:
        line = f"{marks.get(c.status, c.status)} {c.name.ljust(width)}  {c.detail}"
        if c.fix and c.status in (WARN, FAIL):
            line += f" -> fix: {c.fix}"
        lines.append(line)
    if report.ok:
        warned = sum(c.status in (WARN, FAIL) for c in report.checks)
        lines.append("ready to submit" + (f" ({warned} warning(s))" if warned else ""))
    else:
        lines.append(f"NOT ready: {len(report.blocking)} problem(s) block submission")
    return "\n".join(lines)
