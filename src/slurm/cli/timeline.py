"""The report as one self-contained HTML page: a pure function, a :class:`Report` in, text out.

No network is needed to view it: the style and the pictures (SVG) are inline, and
there is no script. Every value from the cluster goes through :func:`html.escape`.

The page: a summary; the timeline (one row per call, grouped by the node it ran
on last, a bar per run from its start to its end, coloured by how that run
ended, so a requeued or retried call shows several bars in its row); the
dependency graph (a workflow's children, ``after`` and Job-as-argument
dependencies), in columns by depth; the usage table; the failures with their
error's first lines and what to change. Each bar carries ``data-*`` attributes
(call, name, state, start, end, node) for tests and tools that read the page.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import math
from collections.abc import Sequence

from slurm.cli.jobview import format_bytes, format_seconds
from slurm.cli.reportdata import Call, Report, Segment

__all__ = ["STATE_COLOURS", "render_html"]

#: Bar and box colours by state.
STATE_COLOURS = {
    "COMPLETED": "#2e9e5b",
    "RUNNING": "#2f7fd8",
    "COMPLETING": "#2f7fd8",
    "PENDING": "#c9a227",
    "REQUEUED": "#e08b2c",
    "PREEMPTED": "#e08b2c",
    "INTERRUPTED": "#e0a050",
    "FAILED": "#d64545",
    "TIMEOUT": "#8e44ad",
    "OUT_OF_MEMORY": "#b03a8a",
    "CANCELLED": "#7f8c8d",
    "NODE_FAIL": "#8b4513",
    "BOOT_FAIL": "#8b4513",
}
_OTHER = "#9aa0a6"

_WIDTH = 1120
_LABEL = 300
_ROW = 22
_GROUP = 26
_AXIS = 30

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;margin:0 0 12px}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px}
.pills span{display:inline-block;margin:0 6px 6px 0;padding:2px 10px;border-radius:12px;
color:#fff;font-size:13px}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#57606a}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;
vertical-align:-2px}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}
svg .group{font-weight:600;fill:#57606a}
svg .tick{fill:#57606a;font-size:11px}
svg .bar:hover{stroke:#000;stroke-width:1}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0}
td.l,th.l{text-align:left}
.st{font-weight:600}
.fail{border:1px solid #f0b4b4;border-left:4px solid #d64545;border-radius:6px;padding:8px 12px;
margin:10px 0;background:#fffafa}
.fail pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px;margin:6px 0}
.advice{color:#0a3069}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _colour(state: str) -> str:
    return STATE_COLOURS.get(state, _OTHER)


def _clock(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nice_step(span: float, ticks: int = 8) -> float:
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _tick(seconds: float, step: float) -> str:
    """An axis label: as many decimals as the step needs below a minute."""
    if seconds >= 60 and step >= 1:
        return format_seconds(seconds)
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{seconds:.{decimals}f}s"


def _end(segment: Segment, now: float) -> float:
    if segment.end is not None:
        return segment.end
    return now if segment.state == "RUNNING" else segment.start


def _bounds(calls: Sequence[Call], now: float) -> tuple[float, float]:
    segments = [s for c in calls for s in c.segments]
    if not segments:
        return now, now + 1
    t0 = min(s.start for s in segments)
    t1 = max(_end(s, now) for s in segments)
    return t0, max(t1, t0 + 0.001)


def _groups(calls: Sequence[Call]) -> list[tuple[str, list[Call]]]:
    by_node: dict[str, list[Call]] = {}
    for call in calls:
        node = call.segments[-1].node if call.segments else None
        by_node.setdefault(node or "(not started)", []).append(call)
    order = sorted(by_node, key=lambda n: (n == "(not started)", n))
    return [
        (node, sorted(by_node[node], key=lambda c: c.segments[0].start if c.segments else 0.0))
        for node in order
    ]


def _label(call: Call) -> str:
    text = f"{call.name} {call.key}"
    return text if len(text) <= 40 else text[:39] + "…"


def timeline_svg(report: Report) -> str:
    """The timeline as an SVG element."""
    now = report.generated
    t0, t1 = _bounds(report.calls, now)
    span = t1 - t0
    plot = _WIDTH - _LABEL - 20
    groups = _groups(report.calls)
    height = _AXIS + sum(_GROUP + _ROW * len(calls) for _, calls in groups) + 10

    def x(t: float) -> float:
        return _LABEL + (t - t0) / span * plot

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{_WIDTH}" '
        f'height="{height}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="timeline" data-t0="{t0:.3f}" data-t1="{t1:.3f}">'
    ]
    step = _nice_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        tx = x(t0 + tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{_AXIS - 6}" x2="{tx:.1f}" y2="{height}" '
            'stroke="#eaeef2"/>'
            f'<text class="tick" x="{tx:.1f}" y="{_AXIS - 10}" text-anchor="middle">'
            f"+{_e(_tick(tick, step))}</text>"
        )
        tick += step
    y = _AXIS
    for node, calls in groups:
        parts.append(
            f'<text class="group" x="4" y="{y + 18}">{_e(node)}</text>'
            f'<line x1="0" y1="{y + _GROUP - 2}" x2="{_WIDTH}" y2="{y + _GROUP - 2}" '
            'stroke="#d0d7de"/>'
        )
        y += _GROUP
        for call in calls:
            mid = y + _ROW / 2
            parts.append(
                f'<text x="14" y="{mid + 4:.1f}"><title>{_e(call.job_dir)}</title>'
                f"{_e(_label(call))}</text>"
            )
            if len(call.segments) > 1:
                first, last = call.segments[0], call.segments[-1]
                parts.append(
                    f'<line x1="{x(first.start):.1f}" y1="{mid:.1f}" '
                    f'x2="{x(_end(last, now)):.1f}" y2="{mid:.1f}" stroke="#8c959f" '
                    'stroke-dasharray="3 3"/>'
                )
            for number, seg in enumerate(call.segments, 1):
                end = _end(seg, now)
                left, width = x(seg.start), max((end - seg.start) / span * plot, 3.0)
                unknown = seg.end is None and seg.state != "RUNNING"
                outline = ' stroke="#57606a" stroke-dasharray="2 2"' if unknown else ""
                where = f" on {seg.node}" if seg.node else ""
                until = "running" if seg.end is None and not unknown else _clock(end)
                tip = (
                    f"{call.name} job {seg.job_id} run {number}: {seg.state}{where}\n"
                    f"{_clock(seg.start)} to {'unknown' if unknown else until} "
                    f"({format_seconds(end - seg.start)}; times: {seg.source})"
                )
                parts.append(
                    f'<rect class="bar" x="{left:.1f}" y="{y + 4}" width="{width:.1f}" '
                    f'height="{_ROW - 8}" rx="2" fill="{_colour(seg.state)}"{outline} '
                    f'data-call="{_e(call.key)}" data-job="{_e(seg.job_id)}" '
                    f'data-name="{_e(call.name)}" data-state="{_e(seg.state)}" '
                    f'data-node="{_e(seg.node or "")}" data-start="{seg.start:.3f}" '
                    f'data-end="{end:.3f}"><title>{_e(tip)}</title></rect>'
                )
                if seg.node and seg.node != node:  # a run elsewhere than the row's group
                    parts.append(
                        f'<text class="tick" x="{left + width + 3:.1f}" y="{mid + 4:.1f}">'
                        f"{_e(seg.node)}</text>"
                    )
            y += _ROW
    parts.append("</svg>")
    return "".join(parts)


def _depths(report: Report) -> dict[str, int]:
    keys = [c.key for c in report.calls]
    depth = dict.fromkeys(keys, 0)
    for _ in range(len(keys)):  # longest path; a cycle (never expected) just stops
        changed = False
        for edge in report.edges:
            if edge.src in depth and edge.dst in depth and depth[edge.dst] < depth[edge.src] + 1:
                depth[edge.dst] = depth[edge.src] + 1
                changed = True
        if not changed:
            break
    return depth


def _rows(report: Report, columns: dict[int, list[Call]]) -> dict[str, int]:
    """Each call's row in its column: next to what it depends on, when it can be, so that
    an evaluation sits beside the training segment it waited for."""
    sources: dict[str, list[str]] = {}
    for edge in report.edges:
        if edge.kind != "child":
            sources.setdefault(edge.dst, []).append(edge.src)
    rows: dict[str, int] = {}
    for column in sorted(columns):
        wanted = []
        for order, call in enumerate(columns[column]):
            known = [rows[s] for s in sources.get(call.key, ()) if s in rows]
            wanted.append((sum(known) / len(known) if known else float(order), order, call.key))
        free = 0
        for want, _, key in sorted(wanted):
            rows[key] = free = max(free, round(want))
            free += 1
    return rows


def graph_svg(report: Report) -> str:
    """The dependency graph as an SVG element: columns by depth, arrows from what came first.

    A job the report's calls depended on that is not one of them (a single job's
    dependency) is drawn as a grey box of its own."""
    known = {c.key for c in report.calls}
    outside = dict.fromkeys(e.src for e in report.edges if e.src not in known)
    report = dataclasses.replace(
        report,
        calls=(
            *(Call(k, "job", "(not in this report)", None, (k,), "") for k in outside),
            *report.calls,
        ),
    )
    depth = _depths(report)
    columns: dict[int, list[Call]] = {}
    for call in report.calls:
        columns.setdefault(depth[call.key], []).append(call)
    box_w, box_h, col_w, row_h = 210, 26, 260, 34
    rows = _rows(report, columns)
    place = {key: (10 + depth[key] * col_w, 10 + row * row_h) for key, row in rows.items()}
    width = 20 + (max(columns, default=0) + 1) * col_w
    height = 20 + (max(rows.values(), default=0) + 1) * row_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="dependency graph">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#57606a"/></marker></defs>'
    ]
    for edge in report.edges:
        if edge.src not in place or edge.dst not in place:
            continue
        (sx, sy), (dx, dy) = place[edge.src], place[edge.dst]
        x1, y1, x2, y2 = sx + box_w, sy + box_h / 2, dx, dy + box_h / 2
        bend = (x2 - x1) / 2
        dash = ' stroke-dasharray="4 3"' if edge.kind == "child" else ""
        colour = "#afb8c1" if edge.kind == "child" else "#57606a"
        parts.append(
            f'<path class="edge" data-src="{_e(edge.src)}" data-dst="{_e(edge.dst)}" '
            f'data-kind="{_e(edge.kind)}" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} '
            f'{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" fill="none" stroke="{colour}"{dash} '
            f'marker-end="url(#arrow)"><title>{_e(edge.kind)}: {_e(edge.src)} → '
            f"{_e(edge.dst)}</title></path>"
        )
    for call in report.calls:
        bx, by = place[call.key]
        colour = _colour(call.state)
        parts.append(
            f'<g class="node" data-call="{_e(call.key)}"><rect x="{bx}" y="{by}" width="{box_w}" '
            f'height="{box_h}" rx="5" fill="#fff" stroke="{colour}" stroke-width="2"/>'
            f'<rect x="{bx}" y="{by}" width="6" height="{box_h}" rx="2" fill="{colour}"/>'
            f'<text x="{bx + 12}" y="{by + 17}"><title>{_e(call.state)} · {_e(call.job_dir)}'
            f"</title>{_e(_label(call)[:32])}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def usage_table(report: Report) -> str:
    """The usage of every call's last run as an HTML table."""
    head = (
        "<tr><th class=l>call</th><th class=l>task</th><th class=l>state</th>"
        "<th class=l>node</th><th>runs</th><th>queue wait</th><th>elapsed</th><th>CPU time</th>"
        "<th>CPU eff.</th><th>MaxRSS</th><th>of mem</th><th>of time</th><th class=l>source</th>"
        "</tr>"
    )
    rows = []
    for call in report.calls:
        u = call.usage
        rows.append(
            f"<tr data-call='{_e(call.key)}'><td class=l>{_e(call.key)}</td>"
            f"<td class=l>{_e(call.name)}</td>"
            f"<td class='l st' style='color:{_colour(call.state)}'>{_e(call.state)}</td>"
            f"<td class=l>{_e(call.node or '-')}</td><td>{len(call.segments)}</td>"
            f"<td>{_e(format_seconds(u.queue_wait_s if u else None))}</td>"
            f"<td>{_e(format_seconds(u.elapsed_s if u else None))}</td>"
            f"<td>{_e(format_seconds(u.cpu_time_s if u else None))}</td>"
            f"<td>{_percent(u.cpu_efficiency if u else None)}</td>"
            f"<td>{_e(format_bytes(u.max_rss_bytes if u else None))}</td>"
            f"<td>{_percent(u.mem_efficiency if u else None)}</td>"
            f"<td>{_percent(u.time_efficiency if u else None)}</td>"
            f"<td class=l>{_e(u.source if u else '-')}</td></tr>"
        )
    return f"<table id='usage'>{head}{''.join(rows)}</table>"


def failures_html(report: Report) -> str:
    """Each failed call: how it ended, the first lines of its error, what to change."""
    failed = [c for c in report.calls if c.failed]
    if not failed:
        return "<p>None: every call that ended succeeded.</p>"
    parts = []
    for call in failed:
        exit_text = f", exit code {call.exit_code}" if call.exit_code else ""
        node = f" on {call.node}" if call.node else ""
        error = "\n".join(call.error) or "(no error text: the job left no result or stderr)"
        parts.append(
            f"<div class='fail' data-call='{_e(call.key)}'><b>{_e(call.name)}</b> "
            f"{_e(call.key)}: <span class=st style='color:{_colour(call.state)}'>"
            f"{_e(call.state)}</span>{_e(exit_text)}{_e(node)}<pre>{_e(error)}</pre>"
            f"<div class='advice'>{_e(call.advice)}</div></div>"
        )
    return "".join(parts)


def _concurrency(report: Report) -> int:
    events = []
    for call in report.calls:
        if call.workflow:
            continue
        for seg in call.segments:
            events += [(seg.start, 1), (_end(seg, report.generated), -1)]
    most = running = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        most = max(most, running)
    return most


def render_html(report: Report) -> str:
    """The whole page."""
    counts: dict[str, int] = {}
    for call in report.calls:
        counts[call.state] = counts.get(call.state, 0) + 1
    pills = "".join(
        f"<span style='background:{_colour(s)}'>{_e(s)} {n}</span>"
        for s, n in sorted(counts.items())
    )
    t0, t1 = _bounds(report.calls, report.generated)
    nodes = sorted({s.node for c in report.calls for s in c.segments if s.node})
    legend = "".join(
        f"<span><i style='background:{colour}'></i>{_e(state)}</span>"
        for state, colour in STATE_COLOURS.items()
        if state not in ("COMPLETING", "BOOT_FAIL")
    )
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in report.notes)
    title = f"{report.name} {report.root}"
    summary = (
        f"{report.kind} · {len(report.calls)} call(s) · "
        f"{sum(len(c.segments) for c in report.calls)} run(s) on {len(nodes)} node(s) · "
        f"from {_clock(t0)} for {format_seconds(t1 - t0)} · "
        f"up to {_concurrency(report)} task(s) at once · "
        f"times from {'accounting and the runner' if report.accounting else 'the runner'}"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}: slurm-sdk report</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class='meta'>{_e(summary)}<br>report made "
        f"{_e(_clock(report.generated))}</p>{notes}<div class='pills'>{pills}</div>"
        f"<h2>Timeline</h2><div class='legend'>{legend}</div>{timeline_svg(report)}"
        f"<h2>Dependencies</h2><p class='meta'>Solid arrows: dependencies (after, a Job passed "
        f"as an argument); dashed: a workflow and the tasks it submitted.</p>{graph_svg(report)}"
        f"<h2>Usage</h2>{usage_table(report)}"
        f"<h2>Failures</h2>{failures_html(report)}"
        "</body></html>\n"
    )
