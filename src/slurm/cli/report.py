"""``slurm jobs report ID``: one page for a job, an array or a workflow (HTML, or ``--json``).

What it asks, whatever the number of jobs (each a batch, never one per job):

1. one ``grep`` of the index: every job id recorded for the job's directory and
   for the directories under its ``tasks/`` (a workflow's children, and theirs:
   each is recorded in the submitter's index, retries and resubmissions too);
2. one ``head -v`` of the directories' small files (``job.sh``,
   ``depends_on.txt``, ``result.json``, ``.runs``, ``.usage``, ``.attempts``),
   and one more for the elements of arrays;
3. one ``sacct --duplicates`` for every id (each requeued run its own row);
   without accounting, one ``squeue`` for the calls not finished;
4. one ``tail -v`` of the stderr of the calls Slurm killed (their error).

The record is :class:`slurm.cli.reportdata.Report`; :mod:`slurm.cli.timeline`
draws it.
"""

from __future__ import annotations

import dataclasses
import json
import time
import webbrowser
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from slurm import Cluster, Usage
from slurm.cli.jobfiles import (
    depends_of,
    head_argv,
    parent_of,
    parse_index_grep,
    script_array_indices,
    split_head,
)
from slurm.cli.jobs import cluster_options, opened_cluster
from slurm.cli.reportdata import (
    Call,
    Edge,
    Report,
    SacctRun,
    build_segments,
    parse_report_sacct,
    parse_runs,
    report_sacct_argv,
)
from slurm.cli.timeline import render_html
from slurm.errors import SlurmError
from slurm.inspect import (
    JobInfo,
    JobPaths,
    Outcome,
    chunked,
    ended_state,
    error_lines,
    explain_failure,
    parse_job_dir,
    query_ids,
    read_attempts,
    runner_usage,
)

__all__ = ["gather_report", "report"]

_FILES_PER_CALL = 300  # paths per head command (argv length)
_ERROR_LINES = 6


def _read_many(cluster: Cluster, paths: Sequence[str]) -> dict[str, str]:
    """The small files among ``paths`` that exist, a few hundred per command."""
    found: dict[str, str] = {}
    for chunk in chunked(list(paths), _FILES_PER_CALL):
        result = cluster.transport.run(head_argv(chunk), check=False)
        found.update(split_head(result.stdout, chunk))
    return found


def _tails(cluster: Cluster, paths: Sequence[str], lines: int) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunked(list(paths), _FILES_PER_CALL):
        argv = ["tail", "-v", "-n", str(lines), "--", *chunk]
        found.update(split_head(cluster.transport.run(argv, check=False).stdout, chunk))
    return found


def _ids_by_dir(cluster: Cluster, root_dir: str, root_id: str) -> dict[str, list[str]]:
    """Every id the index records for ``root_dir`` and the directories under its tasks/."""
    index = cluster.store.index_dir
    result = cluster.transport.run(["grep", "-r", "-F", "-e", root_dir, "--", index], check=False)
    by_dir: dict[str, list[str]] = {root_dir: []}
    for job_id, job_dir in parse_index_grep(result.stdout, index).items():
        if job_dir == root_dir or job_dir.startswith(root_dir + "/tasks/"):
            by_dir.setdefault(job_dir, []).append(job_id)
    if root_id not in by_dir[root_dir]:
        by_dir[root_dir].append(root_id)
    return {d: sorted(set(ids), key=int) for d, ids in by_dir.items()}


def _outcome(text: str | None) -> Outcome | None:
    if text is None:
        return None
    try:
        return Outcome.from_json(text)
    except SlurmError:
        return None


def _error_lines(outcome: Outcome) -> tuple[str, ...]:
    return error_lines(outcome.type_name, outcome.message, outcome.traceback, _ERROR_LINES)


class _Facts:
    """What was read for one call: its files and the ids it was."""

    def __init__(self, key: str, job_dir: str, index: int | None, ids: list[str]) -> None:
        self.key, self.job_dir, self.index, self.ids = key, job_dir, index, ids
        self.paths = JobPaths(job_dir, index)


def gather_report(cluster: Cluster, job_id: str, *, now: float | None = None) -> Report:
    """Everything ``slurm jobs report`` shows about ``job_id`` and what it submitted.

    Raises:
        ConfigurationError: not a job of the SDK under this job base dir.
    """
    now = time.time() if now is None else now
    base, _, element = job_id.partition("_")
    root_dir = cluster.store.job_dir_of(job_id)
    by_dir = _ids_by_dir(cluster, root_dir, base)
    dirs = list(by_dir)
    common = [
        p
        for d in dirs
        for p in (
            JobPaths(d).script,
            JobPaths(d).depends_on,
            JobPaths(d).outcome,
            JobPaths(d).runs,
            JobPaths(d).usage,
            JobPaths(d).attempts,
        )
    ]
    files = _read_many(cluster, common)
    facts: list[_Facts] = []
    element_paths: list[str] = []
    for d in dirs:
        indices = script_array_indices(files.get(JobPaths(d).script, ""))
        first = by_dir[d][0]
        if indices is None:
            facts.append(_Facts(first, d, None, list(by_dir[d])))
            continue
        if d == root_dir and element:
            indices = [i for i in indices if str(i) == element]
        for i in indices:
            fact = _Facts(f"{first}_{i}", d, i, [f"{first}_{i}"])
            facts.append(fact)
            p = fact.paths
            element_paths += [p.outcome, p.runs, p.usage, p.attempts]
    if element_paths:
        files.update(_read_many(cluster, element_paths))
    for fact in facts:  # a retried call: the ids of its later attempts
        attempts = files.get(fact.paths.attempts)
        if attempts:
            earlier, current, _ = read_attempts(attempts)
            later = [a.job_id for a in earlier] + ([current] if current else [])
            fact.ids = list(dict.fromkeys([*fact.ids, *later]))
        if fact.index is not None:  # an element resubmitted as another array's element
            extra = [f"{j}_{fact.index}" for j in by_dir[fact.job_dir][1:]]
            fact.ids = list(dict.fromkeys([*fact.ids, *extra]))
    facts.sort(key=lambda f: (int(f.key.split("_")[0]), f.index or 0))
    facts.sort(key=lambda f: f.job_dir != root_dir)  # the root first
    all_ids = [j for fact in facts for j in fact.ids]
    sacct = _sacct(cluster, all_ids)
    runs_by_id, usages = sacct if sacct is not None else ({}, {})
    live: dict[str, JobInfo] = {}
    if sacct is None:
        open_ids = [f.ids[-1] for f in facts if files.get(f.paths.outcome) is None]
        if open_ids:
            live = cluster.slurm.squeue(open_ids)
    calls, killed = _calls(facts, files, runs_by_id, usages, live, dirs, sacct is not None)
    if killed:
        stderr_of = {key: JobPaths(d, i).stderr for key, (d, i) in killed.items()}
        tails = _tails(cluster, list(stderr_of.values()), _ERROR_LINES)
        calls = [
            _with_stderr(c, tails.get(stderr_of[c.key], "")) if c.key in killed else c
            for c in calls
        ]
    edges = _edges(facts, files, calls)
    root = calls[0]
    kind = "workflow" if len(dirs) > 1 else "array" if facts[0].index is not None else "job"
    notes = []
    if sacct is None:
        notes.append("Accounting (sacct) did not answer: times and usage are the runner's own.")
    return Report(
        root=job_id,
        kind=kind,
        name=root.name.split("[")[0],
        generated=now,
        accounting=sacct is not None,
        calls=tuple(calls),
        edges=tuple(edges),
        notes=tuple(notes),
    )


def _sacct(
    cluster: Cluster, ids: Sequence[str]
) -> tuple[dict[str, list[SacctRun]], dict[str, Usage]] | None:
    runs: dict[str, list[SacctRun]] = {}
    usages: dict[str, Usage] = {}
    for chunk in chunked(query_ids(ids), 500):
        try:
            result = cluster.slurm.run(report_sacct_argv(chunk), check=False)
        except SlurmError:
            return None
        if result.returncode != 0:
            return None
        more_runs, more_usages = parse_report_sacct(result.stdout)
        runs.update(more_runs)
        usages.update(more_usages)
    return runs, usages


def _calls(
    facts: Sequence[_Facts],
    files: Mapping[str, str],
    sacct_runs: Mapping[str, list[SacctRun]],
    usages: Mapping[str, Usage],
    live: Mapping[str, JobInfo],
    dirs: Sequence[str],
    accounting: bool,
) -> tuple[list[Call], dict[str, tuple[str, int | None]]]:
    calls = []
    killed: dict[str, tuple[str, int | None]] = {}
    for fact in facts:
        p = fact.paths
        name, _ = parse_job_dir(fact.job_dir)
        if fact.index is not None:
            name = f"{name}[{fact.index}]"
        outcome = _outcome(files.get(p.outcome))
        rows = [r for j in fact.ids for r in sacct_runs.get(j, ())]
        last_row = rows[-1] if rows else None
        info = live.get(fact.ids[-1])
        if outcome is not None:
            state = "COMPLETED" if outcome.ok else "FAILED"
        elif last_row is not None:
            state = last_row.state
        elif info is not None:
            state = info.state.value
        else:
            state = "UNKNOWN"
        final = outcome is not None or state not in ("PENDING", "RUNNING", "REQUEUED", "UNKNOWN")
        runner = parse_runs(files.get(p.runs, ""))
        segments = build_segments(fact.ids, sacct_runs if accounting else None, runner, final=final)
        usage = usages.get(fact.ids[-1])
        measured = runner_usage(files[p.usage], state=state) if p.usage in files else None
        if usage is None:
            usage = measured
        elif usage.max_rss_bytes is None and measured and measured.max_rss_bytes:
            usage = dataclasses.replace(
                usage, max_rss_bytes=measured.max_rss_bytes, max_rss_source="runner"
            )
        error: tuple[str, ...] = ()
        if outcome is not None and not outcome.ok:
            error = _error_lines(outcome)
        elif outcome is None and final and state != "COMPLETED":
            killed[fact.key] = (fact.job_dir, fact.index)
        node = segments[-1].node if segments else (last_row.node if last_row else None)
        call = Call(
            key=fact.key,
            name=name,
            job_dir=fact.job_dir,
            parent=parent_of(fact.job_dir, dirs),
            ids=tuple(fact.ids),
            state=state,
            exit_code=last_row.exit_code if last_row else None,
            node=node or (outcome.node if outcome and outcome.node else None),
            segments=tuple(segments),
            usage=usage,
            error=error,
            workflow=any(d.startswith(fact.job_dir + "/tasks/") for d in dirs),
        )
        if error:
            advice = explain_failure(state, exit_code=call.exit_code, error=error, raised=True)
            call = dataclasses.replace(call, advice=advice.text())
        calls.append(call)
    return calls, killed


def _with_stderr(call: Call, tail_text: str) -> Call:
    lines = tuple(line for line in tail_text.splitlines() if line.strip())[-_ERROR_LINES:]
    state = ended_state(call.state, tail_text)
    advice = explain_failure(state, exit_code=call.exit_code, error=lines, usage=call.usage)
    return dataclasses.replace(call, state=state, error=lines, advice=advice.text())


def _edges(facts: Sequence[_Facts], files: Mapping[str, str], calls: Sequence[Call]) -> list[Edge]:
    by_id: dict[str, list[str]] = {}
    dir_key: dict[str, str] = {}
    for call in calls:
        dir_key.setdefault(call.job_dir, call.key)
        for job_id in call.ids:
            by_id.setdefault(job_id, []).append(call.key)
            by_id.setdefault(job_id.split("_")[0], []).append(call.key)
    edges: list[Edge] = []
    for fact, call in zip(facts, calls, strict=True):
        if call.parent is not None:
            edges.append(Edge(dir_key[call.parent], call.key, "child"))
        p = JobPaths(fact.job_dir)
        for kind, dep in depends_of(files.get(p.depends_on), files.get(p.script, "")):
            # A job outside the report (a single job's dependency) is named by its id.
            for src in dict.fromkeys(by_id.get(dep, [dep])):
                edges.append(Edge(src, call.key, kind))
    return list(dict.fromkeys(edges))


@click.command("report")
@click.argument("job_id")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the page here (default: report-ID.html in this directory).",
)
@click.option("--open", "open_it", is_flag=True, help="Open the page in a browser.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead.")
@cluster_options
def report(
    job_id: str, html_path: str | None, open_it: bool, as_json: bool, **options: Any
) -> None:  # fmt: skip
    """One page for a job, an array or a workflow: timeline, dependencies, usage, failures.

    The page is self-contained (no network needed to view it). With --json, the same
    data on stdout; times are seconds since the epoch.
    """
    with opened_cluster(options) as cluster:
        data = gather_report(cluster, job_id)
    if as_json:
        click.echo(json.dumps(data.to_dict(), indent=1, sort_keys=True))
        return
    path = Path(html_path or f"report-{job_id}.html")
    path.write_text(render_html(data), encoding="utf-8")
    failed = sum(c.failed for c in data.calls)
    click.echo(f"{path}: {len(data.calls)} call(s), {failed} failed")
    if open_it:
        webbrowser.open(path.resolve().as_uri())
