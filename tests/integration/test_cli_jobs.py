"""`slurm jobs` against the dev cluster (local backend), through click's CliRunner."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import jobfuncs
from click.testing import CliRunner, Result

from slurm import Cluster, task
from slurm.cli import main
from slurm.inspect import printable

_TIMEOUT = 120.0


def _jobs(cluster: Cluster, *args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "250"})
    argv = ["jobs", *args, "--backend", "local", "--job-base-dir", cluster.base_dir]
    return runner.invoke(main, argv, catch_exceptions=False)


def _ok(cluster: Cluster, *args: str) -> str:
    result = _jobs(cluster, *args)
    assert result.exit_code == 0, result.output
    return result.output


def _line_of(output: str, job_id: str) -> str:
    lines = [line for line in output.splitlines() if line.lstrip("│ ").startswith(f"{job_id} ")]
    assert len(lines) == 1, output
    return lines[0]


def _node_names() -> set[str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True)
    return set(out.stdout.split())


def test_list_show_and_logs(cluster: Cluster) -> None:
    # In a directory every node sees, so that its stderr is exactly what it printed (from
    # a checkout under /tmp a node would say it cannot enter the client's directory).
    done = jobfuncs.print_and_return.with_options(chdir=cluster.base_dir)("hello from the node")
    failed = jobfuncs.fail_with("broken on purpose")
    array = jobfuncs.maybe_fail.map([1, 2, 3])
    running = jobfuncs.sleep_forever()
    try:
        assert done.get_result(timeout=_TIMEOUT) == "hello from the node"
        failed.wait(timeout=_TIMEOUT)
        array.wait(timeout=_TIMEOUT)

        listing = _ok(cluster, "list")
        assert f"jobs in {cluster.base_dir}" in listing
        assert "COMPLETED" in _line_of(listing, done.id)
        assert "print_and_return" in _line_of(listing, done.id)
        assert "FAILED" in _line_of(listing, failed.id)
        assert "COMPLETED x2, FAILED x1" in _line_of(listing, array.id)
        assert done.job_dir in _line_of(listing, done.id)
        ids = [line.lstrip("│ ").split()[0] for line in listing.splitlines() if "│" in line]
        assert ids == sorted(ids, key=int, reverse=True), "newest first"
        assert [running.id, array.id] == [
            line.lstrip("│ ").split()[0]
            for line in _ok(cluster, "list", "--limit", "2").splitlines()
            if "│" in line
        ]

        # Exit code and node come from accounting, which may lag the job's end by seconds.
        deadline = time.monotonic() + 60
        shown = _ok(cluster, "show", done.id)
        while not re.search(r"exit code\s+\d", shown) and time.monotonic() < deadline:
            time.sleep(1)
            shown = _ok(cluster, "show", done.id)
        assert re.search(r"state\s+COMPLETED", shown)
        assert re.search(r"exit code\s+0:0", shown)
        node = re.search(r"node\s+(\S+)", shown)
        assert node and node.group(1) in _node_names()  # node1, node2 (or the one-node host)
        assert re.search(rf"script\s+{re.escape(done.job_dir)}/job\.sh", shown)
        assert re.search(r"result\s+'hello from the node'", shown)
        assert "hello from the node" in shown.split("--- stdout")[1]
        assert "err:hello from the node" in shown.split("--- stderr")[1]

        broken = _ok(cluster, "show", failed.id)
        assert re.search(r"state\s+FAILED", broken)
        assert re.search(r"exit code\s+1:0", broken)
        assert "CustomError: ('broken on purpose', 7)" in broken
        assert re.search(r"state\s+FAILED", _ok(cluster, "show", f"{array.id}_1"))
        assert "ValueError: item 2 is bad" in _ok(cluster, "show", f"{array.id}_1")

        assert _ok(cluster, "logs", done.id) == "hello from the node\n"
        assert _ok(cluster, "logs", done.id, "--stderr") == "err:hello from the node\n"
        assert _ok(cluster, "logs", done.id, "--follow") == "hello from the node\n"
    finally:
        running.cancel()


def test_logs_follow_until_the_job_ends(cluster: Cluster) -> None:
    job = jobfuncs.sleep_then(3.0, "slow")
    started = time.monotonic()
    output = _ok(cluster, "logs", job.id, "--follow", "--interval", "0.2")
    assert output == ""
    assert job.done() or job.wait(timeout=10)
    assert time.monotonic() - started > 2.0


def test_cancel_then_watch(cluster: Cluster) -> None:
    forever = jobfuncs.sleep_forever()
    short = jobfuncs.sleep_then(2.0, "ok")
    refused = _jobs(cluster, "cancel", forever.id, "1")
    assert refused.exit_code == 1
    assert "Nothing was cancelled" in refused.output
    assert _ok(cluster, "cancel", forever.id) == f"cancelled {forever.id}\n"

    watched = _ok(cluster, "watch", forever.id, short.id, "--interval", "0.3")
    assert "CANCELLED" in _line_of(watched, forever.id)
    assert "COMPLETED" in _line_of(watched, short.id)
    assert short.get_result(timeout=_TIMEOUT) == "ok"
    squeue = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", forever.id, "-o", "%T"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert squeue.strip() in ("", "CANCELLED")

    nothing = _ok(cluster, "watch")
    assert "no unfinished jobs to watch" in nothing


def test_watch_without_ids_follows_the_unfinished_jobs(cluster: Cluster) -> None:
    finished = jobfuncs.add(1, 1)
    assert finished.get_result(timeout=_TIMEOUT) == 2
    # They end when the test says so, well after watch has listed them (after 1.5 s of
    # sleep, one finished first once, on a busy machine, and watch listed two).
    release = f"{cluster.base_dir}/release-the-watched-jobs"
    pending = [jobfuncs.after_file(release, i) for i in range(3)]
    timer = threading.Timer(8.0, lambda: open(release, "w").close())
    timer.start()
    try:
        watched = _ok(cluster, "watch", "--interval", "0.3")
    finally:
        timer.cancel()
    assert "watching 3 job(s)" in watched
    for job in pending:
        assert "COMPLETED" in _line_of(watched, job.id)
    assert finished.id not in watched


def test_unknown_job_is_an_error_that_says_what_to_do(cluster: Cluster) -> None:
    for command in ("show", "logs"):
        result = _jobs(cluster, command, "999999999")
        assert result.exit_code == 1
        assert "not one of the SDK's jobs" in result.output
        assert "--job-base-dir" in result.output


def test_connect_runs_a_command_inside_a_running_job(cluster: Cluster) -> None:
    running = jobfuncs.sleep_forever()
    try:
        deadline = time.monotonic() + _TIMEOUT
        while running.get_status().value != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)
        runner = CliRunner(env={"COLUMNS": "250"})
        argv = ["jobs", "connect", running.id, "--backend", "local"]
        argv += ["--job-base-dir", cluster.base_dir, "--", "printenv", "SLURM_JOB_ID"]
        result = runner.invoke(main, argv, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.output.strip().splitlines()[-1] == running.id
    finally:
        running.cancel()
    ended = _jobs(cluster, "connect", running.id)
    assert ended.exit_code == 1 and "not running" in ended.output


def test_cancel_refuses_an_indexed_id_slurm_gave_to_another_job(cluster: Cluster) -> None:
    """The index says a job id is the SDK's, but Slurm reused that id for a job the SDK
    did not submit (its --comment is not the SDK's): cancel refuses, the job runs on."""
    ours = jobfuncs.sleep_then(0.1, "ok")
    assert ours.get_result(timeout=_TIMEOUT) == "ok"
    other = (
        subprocess.run(
            [
                "sbatch",
                "--parsable",
                "-p",
                "debug",
                "--mem=16M",
                "-t",
                "2",
                "-o",
                "/dev/null",
                "--comment=someone-else",
                "--wrap",
                "sleep 120",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .split(";")[0]
    )
    try:
        # As after a controller's state reset: the old index entry now names the new job.
        index = f"{cluster.store.index_dir}/{other}"
        cluster.transport.write_text(index, ours.job_dir + "\n", mode=0o600)
        refused = _jobs(cluster, "cancel", other)
        assert refused.exit_code == 1 and "ids were reused" in refused.output
        state = subprocess.run(
            ["squeue", "-h", "-j", other, "-o", "%T"], capture_output=True, text=True, check=False
        ).stdout.strip()
        assert state in ("PENDING", "RUNNING"), state
    finally:
        subprocess.run(["scancel", other], check=False)


HOSTILE_LOG = "title \x1b]0;owned\x07 clipboard \x1b]52;c;eA==\x07 [red]markup[/] 10%\r90%"


@task(time="00:02:00", mem="64M")
def _print_hostile() -> str:
    import sys

    print(HOSTILE_LOG, flush=True)
    print(HOSTILE_LOG, file=sys.stderr, flush=True)
    return "\x1b]0;result\x07"


def test_logs_show_and_list_never_pass_escape_sequences_to_the_terminal(cluster: Cluster) -> None:
    """A log and a result that hold escape sequences and rich markup: printed
    as visible escapes and literal brackets; ``logs --raw`` gives the bytes unchanged."""
    job = _print_hostile()
    assert job.get_result(timeout=_TIMEOUT) == "\x1b]0;result\x07"
    logs = _ok(cluster, "logs", job.id)
    assert logs == printable(HOSTILE_LOG, keep="\r") + "\n"
    assert "\x1b" not in logs and "\x07" not in logs
    assert _ok(cluster, "logs", job.id, "--raw") == HOSTILE_LOG + "\n"
    shown = _ok(cluster, "show", job.id)
    assert "\x1b" not in shown and "\x07" not in shown
    assert "[red]markup[/]" in shown and "\\x1b]0;owned\\x07" in shown
    assert "\x1b" not in _ok(cluster, "list")
