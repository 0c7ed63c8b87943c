"""What ``slurm jobs`` shows, as pure functions: Slurm's answers in, rich renderables out.

Nothing here talks to a cluster; :mod:`slurm.cli.jobs` gathers the facts
(one batched ``squeue``/``sacct`` call, the job directory's files) and hands
them to these functions, which the unit tests call directly.
"""

from __future__ import annotations

import datetime as _dt
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from slurm import Attempt, JobState, Usage, UsageSummary
from slurm.inspect import JobInfo, Snapshot, format_bytes, format_seconds, printable

__all__ = [
    "JobRow",
    "JobView",
    "Snapshot",
    "StateView",
    "describe_state",
    "detail_view",
    "follow_chunk",
    "follow_offset",
    "format_bytes",
    "format_seconds",
    "jobs_table",
    "plain",
    "plain_text",
    "tail",
    "usage_lines",
]

_STYLES = {
    "COMPLETED": "green",
    "RUNNING": "cyan",
    "COMPLETING": "cyan",
    "PENDING": "yellow",
    "REQUEUED": "yellow",
    "ENDED": "green",
    "UNKNOWN": "dim",
}


@dataclass(frozen=True)
class StateView:
    """A job's (or a whole array's) state as the command line shows it."""

    text: str
    final: bool
    exit_code: str | None = None
    node: str | None = None


@dataclass(frozen=True)
class JobRow:
    """One line of ``slurm jobs list`` / ``watch``."""

    job_id: str
    name: str
    state: StateView
    submitted: _dt.datetime | None
    directory: str
    #: What it used (``slurm jobs list --usage``): a job's Usage, an array's summary.
    usage: Usage | UsageSummary | None = None


@dataclass(frozen=True)
class JobView:
    """Everything ``slurm jobs show`` prints about one job."""

    row: JobRow
    script_path: str
    stdout_path: str
    stderr_path: str
    stdout_tail: str
    stderr_tail: str
    #: ``("ok", repr of the value)``, ``("error", "Type: message")`` or None while unfinished.
    outcome: tuple[str, str] | None = None
    usage: Usage | None = None
    #: Every attempt of a retried call (one: it was not retried).
    attempts: Sequence[Attempt] = ()


def _exit_text(info: JobInfo) -> str | None:
    if info.exit_code is None:
        return None
    return f"{info.exit_code}:{info.signal or 0}"


def describe_state(job_id: str, snapshot: Snapshot) -> StateView:
    """The state of ``job_id`` (a job, an array element, or a whole array) in ``snapshot``.

    A whole array is summarised as counts per state (``"COMPLETED x3, RUNNING x1"``).
    A job neither squeue nor sacct knows is ``ENDED`` when it left a done
    marker, else ``UNKNOWN``; both count as final, since a queued job is always
    in squeue.
    """
    info = snapshot.infos.get(job_id)
    if info is not None:
        return StateView(
            info.state.value,
            info.is_final(queued=job_id in snapshot.queued),
            _exit_text(info),
            info.node,
        )
    elements = sorted(
        (i for key, i in snapshot.infos.items() if key.startswith(f"{job_id}_")),
        key=lambda i: _element_order(i.job_id),
    )
    if elements:
        counts = Counter(i.state.value for i in elements)
        text = ", ".join(f"{state} x{n}" for state, n in sorted(counts.items()))
        nodes = sorted({i.node for i in elements if i.node})
        return StateView(
            text,
            all(i.is_final(queued=i.job_id in snapshot.queued) for i in elements),
            None,
            ",".join(nodes) or None,
        )
    if job_id in snapshot.markers:
        return StateView("ENDED", True)
    return StateView(JobState.UNKNOWN.value, True)


def _element_order(job_id: str) -> int:
    index = job_id.rpartition("_")[2]
    return int(index) if index.isdigit() else -1


def _state_text(state: StateView) -> Text:
    first = state.text.split()[0].rstrip(",") if state.text else ""
    style = _STYLES.get(first, "red" if state.final else "")
    return Text(state.text, style=style)


def _when(stamp: _dt.datetime | None) -> str:
    return stamp.strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def _usage_cells(usage: Usage | UsageSummary | None) -> list[str]:
    """WAIT, ELAPSED, CPU, MAX RSS, MEM%, SOURCE; an array shows its worst element."""
    if usage is None:
        return ["-"] * 6
    if isinstance(usage, UsageSummary):

        def worst(figure: object) -> float | None:
            return getattr(figure, "max", None)

        sources = "+".join(sorted(usage.sources))
        return [
            format_seconds(worst(usage.queue_wait_s)),
            format_seconds(worst(usage.elapsed_s)),
            format_seconds(worst(usage.cpu_time_s)),
            format_bytes(worst(usage.max_rss_bytes)),
            "-",
            f"{sources} (max of {usage.count})" if usage.count else "-",
        ]
    return [
        format_seconds(usage.queue_wait_s),
        format_seconds(usage.elapsed_s),
        format_seconds(usage.cpu_time_s),
        format_bytes(usage.max_rss_bytes),
        _percent(usage.mem_efficiency),
        usage.source,
    ]


def jobs_table(rows: Sequence[JobRow], *, title: str | None = None, usage: bool = False) -> Table:
    """The table of ``slurm jobs list`` and ``watch``: id, name, state, submitted, directory.

    ``usage`` adds what each job used: queue wait, elapsed, CPU time, peak
    memory, peak memory as a share of the request, and the figures' source.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", overflow="fold")
    table.add_column("STATE")
    table.add_column("SUBMITTED", no_wrap=True)
    if usage:
        for name in ("WAIT", "ELAPSED", "CPU", "MAX RSS", "MEM%"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("SOURCE")
    table.add_column("DIRECTORY", overflow="fold")
    for row in rows:
        extra = _usage_cells(row.usage) if usage else []
        table.add_row(
            row.job_id,
            plain(row.name),
            _state_text(row.state),
            _when(row.submitted),
            *extra,
            plain(row.directory),
        )
    if not rows:
        table.caption = "no jobs"
    return table


def tail(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text`` (trailing blank lines dropped)."""
    if lines <= 0:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def usage_lines(usage: Usage) -> list[tuple[str, str]]:
    """The ``usage`` facts of ``slurm jobs show``: (label, text), requested vs used."""

    def of(used: str, asked: str, ratio: float | None) -> str:
        return used if asked == "-" else f"{used} of {asked} ({_percent(ratio)})"

    cpus = f"{usage.cpus} CPU" + ("s" if usage.cpus != 1 else "") if usage.cpus else "-"
    memory = of(
        format_bytes(usage.max_rss_bytes), format_bytes(usage.mem_bytes), usage.mem_efficiency
    )
    if usage.max_rss_source:
        memory += f" (peak measured by the {usage.max_rss_source})"
    lines = [
        ("queue wait", format_seconds(usage.queue_wait_s)),
        (
            "elapsed",
            of(
                format_seconds(usage.elapsed_s),
                format_seconds(usage.time_limit_s),
                usage.time_efficiency,
            ),
        ),
        ("cpu time", of(format_seconds(usage.cpu_time_s), cpus, usage.cpu_efficiency)),
        ("peak memory", memory),
    ]
    if usage.gpus:
        lines.append(("gpus", str(usage.gpus)))
    lines.append(("usage from", usage.source))
    return lines


def plain(text: str, *, style: str = "", keep: str = "") -> Text:
    """Text from the cluster as it is: no rich markup, and no control character that
    could drive the terminal (:func:`slurm._terminal.printable`)."""
    return Text(printable(text, keep=keep), style=style)


def detail_view(view: JobView, *, lines: int) -> RenderableType:
    """What ``slurm jobs show`` prints: facts, outcome, then the tails of both logs."""
    row = view.row
    facts = Table(show_header=False, box=None, title=f"job {row.job_id}", title_justify="left")
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("name", plain(row.name))
    facts.add_row("state", _state_text(row.state))
    facts.add_row("exit code", plain(row.state.exit_code or "-"))
    facts.add_row("node", plain(row.state.node or "-"))
    facts.add_row("submitted", _when(row.submitted))
    facts.add_row("directory", plain(row.directory))
    facts.add_row("script", plain(view.script_path))
    if view.outcome is not None:
        kind, text = view.outcome
        label = "result" if kind == "ok" else "error"
        facts.add_row(label, plain(text, style="green" if kind == "ok" else "red"))
    if view.usage is not None:
        for label, text in usage_lines(view.usage):
            facts.add_row(label, text)
    parts: list[RenderableType] = [facts]
    if len(view.attempts) > 1:
        attempts = Table(title="attempts", title_justify="left", box=None)
        for name in ("#", "ID", "STATE", "LIMITS", "RULE", "ELAPSED", "MAX RSS"):
            attempts.add_column(name, no_wrap=True)
        for number, attempt in enumerate(view.attempts, 1):
            limits = " ".join(f"{k}={v}" for k, v in sorted(attempt.limits.items())) or "-"
            used = attempt.usage
            attempts.add_row(
                str(number),
                attempt.job_id,
                attempt.state,
                limits,
                attempt.rule,
                format_seconds(used.elapsed_s if used else None),
                format_bytes(used.max_rss_bytes if used else None),
            )
        parts.append(attempts)
    for label, path, text in (
        ("stdout", view.stdout_path, view.stdout_tail),
        ("stderr", view.stderr_path, view.stderr_tail),
    ):
        parts.append(plain(f"--- {label} ({path}), last {lines} lines ---", style="bold"))
        parts.append(plain(text, keep="\r") if text else Text("(empty)", style="dim"))
    return Group(*parts)


def follow_chunk(seen: int, data: bytes) -> tuple[bytes, int]:
    """What is new in a log read again: ``(new bytes, new offset)``.

    A log that shrank (truncated, or a requeued job started it again) is
    printed again from its start.
    """
    if len(data) < seen:
        return data, len(data)
    return data[seen:], len(data)


def follow_offset(seen: int, size: int) -> int:
    """Where to read a followed log from: after what was printed, or from its start
    again when it shrank (truncated, or a requeued job started it again)."""
    return 0 if size < seen else seen


def outcome_text(value: object, *, width: int = 200) -> str:
    """A one-line ``repr`` of a result, cut to ``width`` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def rows_final(rows: Iterable[JobRow]) -> bool:
    """Whether every row is in a final state (``watch`` stops then)."""
    return all(row.state.final for row in rows)


def plain_text(renderable: RenderableType, *, width: int = 160) -> str:
    """``renderable`` as the terminal would show it, without colours (for tools that want text)."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(renderable)
    return out.getvalue()
