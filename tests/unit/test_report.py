"""`slurm jobs report`'s pure parts: parsers fed with real Slurm and runner output, the page."""

from __future__ import annotations

import doctest
import html
from html.parser import HTMLParser
from pathlib import Path

import pytest

import slurm.cli.reportdata as reportdata
from slurm._slurm.usage import Usage
from slurm.cli.jobfiles import (
    depends_of,
    parent_of,
    parse_depends,
    parse_index_grep,
    script_array_indices,
    script_dependencies,
    split_head,
)
from slurm.cli.reportdata import (
    Call,
    Edge,
    Report,
    RunnerRun,
    Segment,
    build_segments,
    overlap,
    parse_report_sacct,
    parse_runs,
)
from slurm.cli.timeline import render_html

REAL = Path(__file__).parent / "golden" / "real"


def test_doctests() -> None:
    assert doctest.testmod(reportdata).failed == 0


def test_real_sacct_of_the_tutorial_gives_every_run_and_usage() -> None:
    runs, usages = parse_report_sacct((REAL / "report_sacct_tutorial.stdout").read_text())
    assert sorted(runs, key=int) == [str(i) for i in range(22, 35)]
    (workflow,) = runs["22"]
    assert workflow.state == "COMPLETED" and workflow.node == "node1"
    assert (workflow.submit, workflow.start, workflow.end) == (1796155267, 1796155268, 1796155278)
    assert workflow.exit_code == "0:0" and workflow.partition == "debug"
    assert usages["22"].queue_wait_s == 1.0 and usages["22"].elapsed_s == 10.0
    assert usages["22"].mem_bytes == 512 * 1024**2 and usages["22"].state == "COMPLETED"
    assert usages["26"].cpu_time_s == pytest.approx(0.1, abs=0.05)


def test_real_sacct_duplicates_give_one_run_per_requeue() -> None:
    # Captured by tests/unit/golden/capture_slurm_output.py (sacct_argv's fields): a
    # requeued job (two rows) is two runs; the report's fields are a superset, so the
    # rows are re-laid out here with its Submit/Start/End as epoch seconds.
    rows = (REAL / "sacct_duplicates_requeued.stdout").read_text().splitlines()
    text = ""
    for number, row in enumerate(rows):
        job_id, state = row.split("|")[:2]
        start = "" if "Unknown" in row else str(1000 + number)
        text += f"{job_id}|{state}|999|{start}|{start}|1|00:01||1|64M|2|vm|cpu=1|0:0|debug|\n"
    runs, _ = parse_report_sacct(text)
    assert [r.state for r in runs["54"]] == ["REQUEUED", "PENDING"]
    assert runs["54"][1].start is None


def test_sacct_array_ranges_expand() -> None:
    line = "7_[2-3]|PENDING|100|Unknown|Unknown|0|00:00||1|64M|2|None assigned||0:0|debug|None"
    runs, _ = parse_report_sacct(line + "\n")
    assert sorted(runs) == ["7_2", "7_3"] and runs["7_2"][0].node is None


RUNS = (
    "10.000 start restart=0 began=9.900 host=node1\n"
    "12.000 start restart=1 began=11.800 host=node2\n"  # the first was preempted: no end line
    "14.500 requeued-time-limit restart=1 host=node2\n"
    "20.000 retry after=5 OUT_OF_MEMORY\n"
    "30.000 start restart=0 host=node1\n"  # an older runner: no began=
    "31.250 finished restart=0 host=node1\n"
)


def test_runner_log_gives_each_run_and_how_it_ended() -> None:
    assert parse_runs(RUNS) == [
        RunnerRun(10.0, 9.9, None, "INTERRUPTED", "node1", 1),
        RunnerRun(12.0, 11.8, 14.5, "REQUEUED", "node2", 1),
        RunnerRun(30.0, None, 31.25, "COMPLETED", "node1", 2),
    ]
    assert parse_runs("junk\n\n1.0\nx start\n") == []
    (open_run,) = parse_runs("5.0 start restart=0 began=4.9 host=n\n")
    assert open_run.end is None and open_run.state == ""


def test_runner_log_retry_of_a_run_that_was_killed() -> None:
    runs = parse_runs("1.0 start restart=0 host=a\n9.0 retry after=5 OUT_OF_MEMORY\n")
    assert runs == [RunnerRun(1.0, None, None, "OUT_OF_MEMORY", "a", 1)]


def test_segments_from_the_runner_alone() -> None:
    segments = build_segments(["5", "6"], None, parse_runs(RUNS), final=True)
    assert [(s.job_id, s.state, s.start, s.end, s.node) for s in segments] == [
        ("5", "INTERRUPTED", 9.9, None, "node1"),
        ("5", "REQUEUED", 11.8, 14.5, "node2"),
        ("6", "COMPLETED", 30.0, 31.25, "node1"),
    ]
    assert {s.source for s in segments} == {"runner"}
    (running,) = build_segments(["7"], None, parse_runs("1 start restart=0 host=a\n"), final=False)
    assert running.state == "RUNNING" and running.end is None


def test_segments_from_sacct_take_the_runners_milliseconds_inside_its_seconds() -> None:
    runs, _ = parse_report_sacct((REAL / "report_sacct_tutorial.stdout").read_text())
    runner = parse_runs(
        "1796155272.684 start restart=0 began=1796155272.606 host=node2\n"
        "1796155272.692 finished restart=0 host=node2\n"
    )
    (seg,) = build_segments(["26"], runs, runner, final=True)
    assert (seg.start, seg.end, seg.source) == (1796155272.606, 1796155272.692, "sacct+runner")
    assert seg.state == "COMPLETED" and seg.node == "node2"
    (plain,) = build_segments(["26"], runs, [], final=True)
    assert (plain.start, plain.end, plain.source) == (1796155272, 1796155272, "sacct")
    # A runner run outside the allocation's seconds is not this run's.
    far = parse_runs("1796155290.0 start restart=0 began=1796155289.9 host=x\n")
    (kept,) = build_segments(["26"], runs, far, final=True)
    assert kept.source == "sacct"


def test_overlap_of_two_runs() -> None:
    a = Segment("1", "COMPLETED", 10.0, 12.0, "n1", "sacct")
    b = Segment("2", "COMPLETED", 11.5, 13.0, "n2", "sacct")
    c = Segment("3", "RUNNING", 12.0, None, "n2", "sacct")
    assert overlap(a, b, now=20) == pytest.approx(0.5)
    assert overlap(a, c, now=20) == 0.0 and overlap(b, c, now=20) == 1.0


def test_head_output_splits_into_files() -> None:
    job_dir = (REAL / "report_head_eval.dir").read_text().strip()
    names = ("job.sh", "depends_on.txt", "result.json", "result.runs", "result.usage", "x")
    paths = [f"{job_dir}/{n}" for n in names]
    files = split_head((REAL / "report_head_eval.stdout").read_text(), paths)
    assert sorted(files) == sorted(paths[:5])  # no attempts file, no x
    assert files[paths[1]] == "afterok 25\n"
    assert files[paths[0]].startswith("#!/bin/bash\n") and files[paths[0]].endswith("\n")
    assert '"ok": true' in files[paths[2]]
    assert parse_runs(files[paths[3]])[0].began == 1796155272.606
    assert script_array_indices(files[paths[0]]) is None
    assert script_dependencies(files[paths[0]]) == []  # sbatch was not told: it had finished
    assert depends_of(files[paths[1]], files[paths[0]]) == [("afterok", "25")]


def test_head_split_edge_cases() -> None:
    out = "==> a <==\nx\ny\n==> b <==\n\n==> c <==\nlast"
    assert split_head(out, ["a", "b", "c"]) == {"a": "x\ny", "b": "", "c": "last"}
    # A file's content cannot pose as an earlier file, only as a later one in the list.
    assert split_head("==> b <==\n==> a <==\n", ["a", "b"]) == {"b": "==> a <==\n"}


def test_script_directives() -> None:
    script = (
        "#!/bin/bash\n#SBATCH --array=0-3%2\n#SBATCH --dependency=afterok:12:13,afterany:14_2\n"
    )
    assert script_array_indices(script) == [0, 1, 2, 3]
    assert script_dependencies(script) == [
        ("afterok", "12"),
        ("afterok", "13"),
        ("afterany", "14_2"),
    ]
    assert parse_depends("afterok 12\nbad\nafterany 14_2\nafterok x\n") == [
        ("afterok", "12"),
        ("afterany", "14_2"),
    ]


def test_index_grep_and_parents() -> None:
    out = (
        "/h/jobs/.index/9:/h/jobs/wf-1\n/h/jobs/.index/10:/h/jobs/wf-1/tasks/a-1\n"
        "/h/jobs/.index/junk:/x\nother\n/h/jobs/.index/11:/h/jobs/wf-1/tasks/b-1/tasks/c-1\n"
        "/h/jobs/.index/12:/h/jobs/wf-1/tasks/../../../etc\n/h/jobs/.index/13:rel/dir\n"
    )
    assert parse_index_grep(out, "/h/jobs/.index") == {
        "9": "/h/jobs/wf-1",
        "10": "/h/jobs/wf-1/tasks/a-1",
        "11": "/h/jobs/wf-1/tasks/b-1/tasks/c-1",
    }
    dirs = ["/h/jobs/wf-1", "/h/jobs/wf-1/tasks/b-1", "/h/jobs/wf-1/tasks/a-1"]
    assert parent_of("/h/jobs/wf-1/tasks/b-1/tasks/c-1", dirs) == "/h/jobs/wf-1/tasks/b-1"
    assert parent_of("/h/jobs/wf-1/tasks/a-1", dirs) == "/h/jobs/wf-1"
    assert parent_of("/h/jobs/wf-1", dirs) is None


# ------------------------------------------------------------------------ the page


def _report() -> Report:
    def call(key: str, name: str, state: str, *segments: Segment, **kw: object) -> Call:
        return Call(key, name, f"/j/{name}-{key}", None if key == "1" else "1", (key,), state,
                    segments=segments, **kw)  # type: ignore[arg-type]  # fmt: skip

    return Report(
        root="1",
        kind="workflow",
        name="flow",
        generated=200.0,
        accounting=True,
        calls=(
            call(
                "1",
                "flow",
                "COMPLETED",
                Segment("1", "COMPLETED", 100, 160, "n1", "sacct"),
                workflow=True,
            ),
            call(
                "2",
                "train",
                "COMPLETED",
                Segment("2", "PREEMPTED", 101, 110, "n2", "sacct"),
                Segment("2", "COMPLETED", 112, 130, "n1", "sacct"),
            ),
            call(
                "3",
                "evaluate",
                "FAILED",
                Segment("3", "FAILED", 125, 140, "n2", "sacct"),
                error=("ValueError: <b>bad</b>", "  line 3"),
                advice="Fix it & retry.",
                exit_code="1:0",
                usage=Usage("sacct", elapsed_s=15, max_rss_bytes=2**20),
            ),
            call("4", "pending <x>", "PENDING"),
        ),
        edges=(Edge("1", "2", "child"), Edge("1", "3", "child"), Edge("2", "3", "afterok")),
        notes=("a <note>",),
    )


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def test_page_has_a_bar_per_run_and_is_self_contained() -> None:
    page = render_html(_report())
    parser = _Collect()
    parser.feed(page)
    bars = [a for t, a in parser.tags if t == "rect" and a.get("class") == "bar"]
    assert [(b["data-call"], b["data-state"]) for b in bars] == [
        ("1", "COMPLETED"),  # node1 first: the workflow, then train's second run
        ("2", "PREEMPTED"),
        ("2", "COMPLETED"),
        ("3", "FAILED"),
    ]
    assert float(bars[3]["data-start"]) < float(bars[2]["data-end"])  # eval beside train
    edges = [a for t, a in parser.tags if t == "path" and a.get("class") == "edge"]
    assert {(e["data-src"], e["data-dst"], e["data-kind"]) for e in edges} == {
        ("1", "2", "child"),
        ("1", "3", "child"),
        ("2", "3", "afterok"),
    }
    assert not any(t in ("script", "link", "img") for t, _ in parser.tags)
    assert "https://" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_page_escapes_what_comes_from_the_cluster() -> None:
    page = render_html(_report())
    assert "<b>bad</b>" not in page and html.escape("ValueError: <b>bad</b>") in page
    assert "pending <x>" not in page and "a <note>" not in page
    assert "Fix it &amp; retry." in page
    assert "(not started)" in page  # the pending call's row


def test_page_of_one_job_without_runs() -> None:
    report = Report(
        "5", "job", "add", 50.0, False, (Call("5", "add", "/j/add", None, ("5",), "PENDING"),)
    )
    page = render_html(report)
    assert "None: every call that ended succeeded." in page and "add 5" in page


def test_a_dependency_outside_the_report_is_a_box_of_its_own() -> None:
    call = Call("8", "add", "/j/add-8", None, ("8",), "COMPLETED")
    report = Report("8", "job", "add", 10.0, True, (call,), (Edge("7", "8", "afterok"),))
    parser = _Collect()
    parser.feed(render_html(report))
    boxes = [a["data-call"] for t, a in parser.tags if t == "g" and a.get("class") == "node"]
    assert boxes == ["7", "8"]
    edges = [a for t, a in parser.tags if t == "path" and a.get("class") == "edge"]
    assert [(e["data-src"], e["data-dst"]) for e in edges] == [("7", "8")]


def test_a_requeue_after_the_result_the_real_log_and_accounting() -> None:
    # scontrol requeue of a job that then finished within KillWait (dev cluster, job 1123):
    # sacct has the killed allocation and the rerun, the runner its run and a no-op rerun.
    log = (
        "1796157368.634 start restart=0 began=1796157368.546 host=node1\n"
        "1796157372.656 finished restart=0 host=node1\n"
        "1796157384.903 already-finished restart=1 host=node1\n"
    )
    sacct = (
        "1123|REQUEUED|1796157368|1796157368|1796157368|0|00:00.1||1|64M|2|node1|cpu=1|0:0|debug|\n"
        "1123|COMPLETED|1796157373|1796157384|1796157384|0|00:00.1||1|64M|2|node1|cpu=1|0:0|debug|\n"
    )
    runs, _ = parse_report_sacct(sacct)
    first, second = build_segments(["1123"], runs, parse_runs(log), final=True)
    assert (first.state, first.start, first.end) == ("REQUEUED", 1796157368.546, 1796157368.546)
    assert second.state == "COMPLETED" and second.start == 1796157384.903  # inside its second
    alone = build_segments(["1123"], None, parse_runs(log), final=True)
    assert [(s.state, s.start, s.end) for s in alone] == [
        ("COMPLETED", 1796157368.546, 1796157372.656),
        ("COMPLETED", 1796157384.903, 1796157384.903),
    ]
