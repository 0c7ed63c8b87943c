"""`slurm jobs report` and `slurm jobs why` against the dev cluster (issue 24).

The report of the tutorial's own workflow, run as section 5 says, must show an
evaluation running beside a later training segment: checked in its JSON and in
the page Chromium renders. With ``SLURM_SDK_UPDATE_SCREENSHOTS=1`` its screenshot
replaces the README's (``docs/images/report-tutorial.png``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jobfuncs
import pytest
from click.testing import CliRunner, Result
from tutorial import run_tutorial

from slurm import Cluster, Job
from slurm.cli import main
from slurm.errors import SubmissionError

_TIMEOUT = 120.0
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "images"


def _jobs(base_dir: str, *args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "200"})
    argv = ["jobs", *args, "--backend", "local", "--job-base-dir", base_dir]
    return runner.invoke(main, argv, catch_exceptions=False)


def _ok(base_dir: str, *args: str) -> str:
    result = _jobs(base_dir, *args)
    assert result.exit_code == 0, result.output
    return result.output


def _why(cluster: Cluster, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(_ok(cluster.base_dir, "why", job_id, "--json"))
    return answer


def _report(base_dir: str, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_ok(base_dir, "report", job_id, "--json"))
    return data


def _eventually(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {what}"
            return value
        time.sleep(1)


# --------------------------------------------------------------------------- why


def test_why_names_the_dependency_it_waits_on_and_that_jobs_state(cluster: Cluster) -> None:
    first = jobfuncs.sleep_then(60, "first")
    second = jobfuncs.echo.after(first)("second")
    try:
        _eventually(lambda: first.get_status().value == "RUNNING", "the first job to run")
        answer = _eventually(
            lambda: (a := _why(cluster, second.id))["facts"].get("reason") == "Dependency" and a,
            "the second job to wait on its dependency",
        )
        assert answer["state"] == "PENDING"
        assert f"job {first.id} (RUNNING)" in answer["answer"], answer
        assert "starts by itself" in answer["fix"]
        text = _ok(cluster.base_dir, "why", second.id)
        assert f"job {second.id}: PENDING" in text and "why: It waits for job" in text
    finally:
        cluster.slurm.cancel([first.id, second.id])


def _submitted_or_refused(options: dict[str, Any]) -> Job[Any] | None:
    """The job, or None when this Slurm refuses the request at submission (24.11 and
    later refuse what no node can hold; 22.05 queues it and gives the reason)."""
    try:
        return jobfuncs.echo.with_options(**options)("never")
    except SubmissionError as exc:
        assert exc.refused and "Requested node configuration is not available" in str(exc)
        return None


def test_why_says_a_request_is_larger_than_any_node(cluster: Cluster) -> None:
    # Memory larger than any node is refused by sbatch itself (Slurm 22.05): too many
    # CPUs on one node is accepted and left pending, reason PartitionConfig.
    job = _submitted_or_refused({"cpus_per_task": 9})
    if job is None:
        return
    try:
        answer = _eventually(
            lambda: (a := _why(cluster, job.id))["facts"].get("reason") == "PartitionConfig" and a,
            "Slurm to give the reason",
        )
        assert "It asks for 9 CPUs on one node; the largest node of debug has 4" in answer["answer"]
        assert "cpus_per_task=4 or fewer" in answer["fix"]
    finally:
        cluster.slurm.cancel([job.id])


def test_why_names_the_partition_limit_a_job_exceeds(cluster: Cluster) -> None:
    job = _submitted_or_refused({"nodes": 3})
    if job is None:
        return
    try:
        answer = _eventually(
            lambda: (
                (a := _why(cluster, job.id))["facts"].get("reason") == "PartitionNodeLimit" and a
            ),
            "Slurm to give the reason",
        )
        assert "It asks for 3 nodes; debug allows MaxNodes=UNLIMITED and has 2" in answer["answer"]
        assert "nodes=2 or fewer" in answer["fix"]
    finally:
        cluster.slurm.cancel([job.id])


def test_why_a_held_job_and_a_failed_one(cluster: Cluster) -> None:
    blocker = jobfuncs.sleep_then(60)
    held = jobfuncs.echo.after(blocker)("held")
    failed = jobfuncs.maybe_fail(2)
    try:
        subprocess.run(["scontrol", "uhold", held.id], check=True, capture_output=True)
        answer = _eventually(
            lambda: (a := _why(cluster, held.id))["facts"].get("reason") == "JobHeldUser" and a,
            "the hold to show",
        )
        assert "held by you" in answer["answer"] and "scontrol release" in answer["fix"]

        failed.wait(timeout=_TIMEOUT)
        answer = _why(cluster, failed.id)
        assert answer["state"] == "FAILED"
        assert "The task raised ValueError: item 2 is bad" in answer["answer"], answer
        assert answer["error"][0] == "ValueError: item 2 is bad"
        assert "Retry(exceptions=" in answer["fix"]
        # The same answer from the Job itself, for code of one's own (its facts, read
        # again later, may have more of accounting's figures than the command's had).
        mine = failed.why()
        assert (mine.state, mine.answer, mine.fix, list(mine.error)) == (
            answer["state"],
            answer["answer"],
            answer["fix"],
            answer["error"],
        )
        assert held.why().facts["reason"] == "JobHeldUser"
    finally:
        cluster.slurm.cancel([blocker.id, held.id])


def test_why_out_of_memory_names_the_figures_and_the_fix(cluster: Cluster) -> None:
    job = jobfuncs.hold_memory.with_options(mem="100M", acctg_freq="task=1")(400, 5)
    job.wait(timeout=_TIMEOUT)
    answer = _eventually(
        lambda: (a := _why(cluster, job.id))["state"] == "OUT_OF_MEMORY" and a,
        "accounting to record the end",
    )
    assert answer["answer"].startswith("It ran out of memory"), answer
    asked = re.search(r"Ask for mem=(\d+)M", answer["fix"])
    # From its peak as accounting measured it (how far it got before the kill varies with
    # the machine's load), never less than half as much again as the 100M it had.
    peak = re.search(r"MaxRSS (\d+) MB", answer["answer"])
    peak_mb = int(peak.group(1)) if peak else 0  # no sample before the kill: from the 100M
    assert asked and int(asked.group(1)) >= int(max(peak_mb, 100) * 1.5), answer
    assert "Retry(grow={'mem': 1.5})" in answer["fix"]


# ------------------------------------------------------------------------ report


def _overlapping_pairs(report: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(eval call, later training call, seconds both ran) for every overlap in the report."""
    calls = report["calls"]
    trains = [c for c in calls if c["name"] == "train_epoch_segment"]
    found = []
    for ev in (c for c in calls if c["name"] == "evaluate_epoch"):
        for seg in ev["segments"]:
            for train in trains:
                if int(train["key"]) < int(ev["key"]):
                    continue  # a later training segment: submitted after this evaluation
                for other in train["segments"]:
                    both = min(seg["end"], other["end"]) - max(seg["start"], other["start"])
                    if both > 0:
                        found.append((ev["key"], train["key"], both))
    return found


def test_report_of_the_tutorials_workflow_shows_evaluation_beside_training(
    devcluster: object, tmp_path: Path
) -> None:
    jobs = str(tmp_path / "jobs")
    _, state_path = run_tutorial(
        tmp_path, "--backend", "local", "--job-base-dir", jobs, "--partition", "debug"
    )
    workflow_id = json.loads(state_path.read_text())["workflow_job_id"]
    report = _eventually(
        lambda: (
            (r := _report(jobs, workflow_id))
            and all(s["end"] for c in r["calls"] for s in c["segments"])
            and r
        ),
        "accounting to record every end",
    )
    assert report["kind"] == "workflow" and report["accounting"] is True
    names = [c["name"] for c in report["calls"]]
    assert names[0] == "parallel_train_eval_workflow"
    assert names.count("train_epoch_segment") == 9 and names.count("evaluate_epoch") == 3
    assert all(c["state"] == "COMPLETED" and len(c["segments"]) == 1 for c in report["calls"])
    root = report["calls"][0]["key"]
    edges = {(e["src"], e["dst"], e["kind"]) for e in report["edges"]}
    assert {(root, c["key"], "child") for c in report["calls"][1:]} <= edges
    # Each evaluation depends (after) on the last segment of its epoch, already over when it
    # was submitted, so sbatch was not told: depends_on.txt keeps it.
    evals = [c for c in report["calls"] if c["name"] == "evaluate_epoch"]
    for ev in evals:
        (src,) = [s for s, d, k in edges if d == ev["key"] and k == "afterok"]
        assert int(src) < int(ev["key"])
    pairs = _overlapping_pairs(report)
    assert pairs, f"no evaluation overlapped a later training segment: {report['calls']}"
    print("evaluation beside training:", pairs)

    # The page: every call has a bar, and an evaluation bar overlaps a later training bar,
    # read from the DOM Chromium built.
    page = tmp_path / "report.html"
    out = _ok(jobs, "report", workflow_id, "--html", str(page))
    assert f"{page}: 13 call(s), 0 failed" in out
    html_text = page.read_text()
    assert "http://" not in html_text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html_text and "<script" not in html_text
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    dom = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    bars = _bars(dom)
    assert {b["data-call"] for b in bars} == {c["key"] for c in report["calls"]}
    eval_bars = [b for b in bars if b["data-name"] == "evaluate_epoch"]
    train_bars = [b for b in bars if b["data-name"] == "train_epoch_segment"]
    assert any(
        int(t["data-call"]) > int(e["data-call"])
        and float(t["data-start"]) < float(e["data-end"])
        and float(e["data-start"]) < float(t["data-end"])
        for e in eval_bars
        for t in train_bars
    ), bars
    shot = tmp_path / "report-tutorial.png"
    subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1180,1080", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000
    if os.environ.get("SLURM_SDK_UPDATE_SCREENSHOTS"):  # the README's picture
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT_DIR / shot.name)


def _bars(dom: str) -> list[dict[str, str]]:
    """The timeline's bars, with their data-* attributes, from the DOM Chromium serialised."""
    from html.parser import HTMLParser

    bars: list[dict[str, str]] = []

    class Bars(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = {k: v or "" for k, v in attrs}
            if tag == "rect" and "bar" in found.get("class", "").split():
                bars.append(found)

    Bars().feed(dom)
    return bars


def test_report_of_a_retried_call_and_of_a_failure(cluster: Cluster, tmp_path: Path) -> None:
    failed = jobfuncs.maybe_fail(2)
    grown = jobfuncs.outgrow_memory(300)  # out of memory, then retried with more
    assert grown.get_result(timeout=240) == 300 * 1024 * 1024
    failed.wait(timeout=_TIMEOUT)

    report = _eventually(
        lambda: (
            (r := _report(cluster.base_dir, grown.attempts[0].job_id))
            and len(r["calls"][0]["segments"]) >= 2
            and r
        ),
        "accounting to record both attempts",
    )
    (call,) = report["calls"]
    assert report["kind"] == "job"
    assert len(call["ids"]) >= 2 and call["ids"][-1] == grown.id
    first, last = call["segments"][0], call["segments"][-1]
    assert first["state"] in ("OUT_OF_MEMORY", "FAILED") and last["state"] == "COMPLETED"
    assert first["job_id"] != last["job_id"] and first["end"] <= last["start"] + 1

    report = _report(cluster.base_dir, failed.id)
    (call,) = report["calls"]
    assert call["state"] == "FAILED"
    assert call["error"][0] == "ValueError: item 2 is bad"
    assert "Retry(exceptions=" in call["advice"]
    page = tmp_path / "failed.html"
    _ok(cluster.base_dir, "report", failed.id, "--html", str(page))
    text = page.read_text()
    assert "ValueError: item 2 is bad" in text and "class='fail'" in text


def test_report_of_an_array_one_row_per_element(cluster: Cluster) -> None:
    array = jobfuncs.maybe_fail.map([1, 2, 3])
    array.wait(timeout=_TIMEOUT)
    report = _report(cluster.base_dir, array.id)
    assert report["kind"] == "array"
    assert [c["key"] for c in report["calls"]] == [f"{array.id}_{i}" for i in range(3)]
    states = sorted(c["state"] for c in report["calls"])
    assert states == ["COMPLETED", "COMPLETED", "FAILED"]


def test_report_of_a_requeued_call_one_bar_per_run(cluster: Cluster) -> None:
    job = jobfuncs.sleep_then(4, "again")
    _eventually(lambda: " start " in _read(job.runs_path), "the runner to start", 60)
    subprocess.run(["scontrol", "requeue", job.id], check=True, capture_output=True)
    assert job.get_result(timeout=240) == "again"
    report = _eventually(
        lambda: (
            (r := _report(cluster.base_dir, job.id))
            and len(r["calls"][0]["segments"]) >= 2
            and all(s["end"] for s in r["calls"][0]["segments"])
            and r
        ),
        "accounting to record both runs",
        timeout=240,  # Slurm holds a requeued job a while (EligibleTime), longer when busy
    )
    (call,) = report["calls"]
    assert call["ids"] == [job.id] and call["state"] == "COMPLETED"
    first, *_, last = call["segments"]
    assert first["state"] in ("REQUEUED", "PREEMPTED") and last["state"] == "COMPLETED"
    assert first["job_id"] == last["job_id"] == job.id
    assert first["end"] <= last["start"] + 1


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


def test_report_without_accounting_takes_the_runners_files(
    devcluster: object, tmp_path: Path
) -> None:
    jobs = str(tmp_path / "jobs")
    _, state_path = run_tutorial(
        tmp_path, "--backend", "local", "--job-base-dir", jobs, "--partition", "debug"
    )
    workflow_id = json.loads(state_path.read_text())["workflow_job_id"]
    # A cluster whose accounting is off: its sacct answers as Slurm's does then.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacct").write_text(
        "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n"
    )
    (fake / "sacct").chmod(0o755)
    runner = CliRunner(env={"PATH": f"{fake}:{os.environ['PATH']}"})
    result = runner.invoke(
        main,
        ["jobs", "report", workflow_id, "--json", "--backend", "local", "--job-base-dir", jobs],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["accounting"] is False and "runner's own" in report["notes"][0]
    assert len(report["calls"]) == 13
    for call in report["calls"]:
        assert call["state"] == "COMPLETED", call
        assert [s["source"] for s in call["segments"]] == ["runner"]
        assert call["usage"]["source"] == "runner" and call["usage"]["max_rss_bytes"]
    assert _overlapping_pairs(report), report["calls"]


def test_report_names_a_job_passed_as_an_argument(cluster: Cluster) -> None:
    first = jobfuncs.add(1, 2)
    second = jobfuncs.add(first, 3)  # a Job as an argument: afterok on it
    assert second.get_result(timeout=_TIMEOUT) == 6
    report = _report(cluster.base_dir, second.id)
    assert {(e["src"], e["dst"], e["kind"]) for e in report["edges"]} == {
        (first.id, second.id, "afterok")
    }
