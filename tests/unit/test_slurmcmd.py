"""Slurm argv builders and parsers, against documented formats and captured real output."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import slurm._slurm.commands
from slurm._slurm.commands import (
    ACCOUNTING_FINAL_STATES,
    TERMINAL_STATES,
    JobInfo,
    JobState,
    chunked,
    expand_array_ids,
    parse_exit_code,
    parse_sacct,
    parse_sbatch_output,
    parse_show_config,
    parse_squeue,
    sacct_argv,
    sbatch_argv,
    sbatch_running,
    scancel_argv,
    scontrol_show_config_argv,
    squeue_argv,
    squeue_says_invalid_id,
)
from slurm._slurm.script import render_batch_script
from slurm.errors import SubmissionError

GOLDEN = Path(__file__).parent / "golden"


def test_doctests() -> None:
    assert doctest.testmod(slurm._slurm.commands).failed == 0


# ---------------------------------------------------------------------- JobState


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("PENDING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("running", JobState.RUNNING),
        (" COMPLETED \n", JobState.COMPLETED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CANCELLED by 1000", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("OUT_OF_ME+", JobState.OUT_OF_MEMORY),
        ("REQUEUE_H+", JobState.REQUEUE_HOLD),
        ("REQUEUE+", JobState.UNKNOWN),  # ambiguous prefix: REQUEUED, REQUEUE_HOLD, ...
        ("NODE_FAIL", JobState.NODE_FAIL),
        ("BOOT_FAIL", JobState.BOOT_FAIL),
        ("DEADLINE", JobState.DEADLINE),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("PREEMPTED", JobState.PREEMPTED),
        ("TIMEOUT", JobState.TIMEOUT),
        ("RESV_DEL_HOLD", JobState.RESV_DEL_HOLD),
        ("PD", JobState.PENDING),
        ("R", JobState.RUNNING),
        ("CG", JobState.COMPLETING),
        ("CD", JobState.COMPLETED),
        ("CA", JobState.CANCELLED),
        ("F", JobState.FAILED),
        ("TO", JobState.TIMEOUT),
        ("PR", JobState.PREEMPTED),
        ("NF", JobState.NODE_FAIL),
        ("BF", JobState.BOOT_FAIL),
        ("DL", JobState.DEADLINE),
        ("OOM", JobState.OUT_OF_MEMORY),
        ("RQ", JobState.REQUEUED),
        ("RH", JobState.REQUEUE_HOLD),
        ("RF", JobState.REQUEUE_FED),
        ("RS", JobState.RESIZING),
        ("RV", JobState.REVOKED),
        ("SI", JobState.SIGNALING),
        ("SE", JobState.SPECIAL_EXIT),
        ("SO", JobState.STAGE_OUT),
        ("ST", JobState.STOPPED),
        ("S", JobState.SUSPENDED),
        ("CF", JobState.CONFIGURING),
        ("pd", JobState.PENDING),
        ("", JobState.UNKNOWN),
        ("   ", JobState.UNKNOWN),
        ("+", JobState.UNKNOWN),
        ("EXPLODED", JobState.UNKNOWN),
        ("UNKNOWN", JobState.UNKNOWN),
    ],
)
def test_job_state_parse(text: str, state: JobState) -> None:
    assert JobState.parse(text) is state


def test_job_state_parse_never_raises_on_non_strings() -> None:
    assert JobState.parse(None) is JobState.UNKNOWN  # type: ignore[arg-type]


def test_every_state_parses_from_its_own_name() -> None:
    for state in JobState:
        assert JobState.parse(state.value) is state
        assert JobState(state.value) is state
        assert state == state.value  # a str enum


def test_terminal_states() -> None:
    assert {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
    } <= TERMINAL_STATES
    assert JobState.PREEMPTED not in TERMINAL_STATES
    assert JobState.REQUEUED not in TERMINAL_STATES
    assert JobState.PREEMPTED.is_final_in_accounting
    assert TERMINAL_STATES < ACCOUNTING_FINAL_STATES


def test_state_classes_partition_sensibly() -> None:
    for state in JobState:
        assert not (state.is_terminal and state.is_active), state
        assert state.is_terminal == (state in TERMINAL_STATES)
        if state.is_terminal:
            assert state.is_final_in_accounting
    neither = {s for s in JobState if not s.is_terminal and not s.is_active}
    assert neither == {JobState.PREEMPTED, JobState.UNKNOWN}


# ---------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("items", "size", "chunks"),
    [
        ([], 3, []),
        (["1"], 3, [["1"]]),
        (["1", "2", "3"], 3, [["1", "2", "3"]]),
        (["1", "2", "3", "4"], 3, [["1", "2", "3"], ["4"]]),
        (["1", "2", "3"], 1, [["1"], ["2"], ["3"]]),
    ],
)
def test_chunked(items: list[str], size: int, chunks: list[list[str]]) -> None:
    assert list(chunked(items, size)) == chunks


def test_chunked_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        list(chunked(["1"], 0))


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("123", ["123"]),
        ("123_4", ["123_4"]),
        ("123_[5-7%2]", ["123_5", "123_6", "123_7"]),
        ("123_[1,3,5-6]", ["123_1", "123_3", "123_5", "123_6"]),
        ("123_[0-8:4]", ["123_0", "123_4", "123_8"]),
        ("123_[7]", ["123_7"]),
        ("123_[2-20%2]", [f"123_{i}" for i in range(2, 21)]),
        ("123+0", ["123+0"]),
        ("  123_1  ", ["123_1"]),
        ("", []),
        ("123_[x-y]", ["123_[x-y]"]),  # unreadable: returned as it is
    ],
)
def test_expand_array_ids(text: str, ids: list[str]) -> None:
    assert expand_array_ids(text) == ids


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0:0", (0, 0)),
        ("1:0", (1, 0)),
        ("0:15", (0, 15)),
        ("0:9", (0, 9)),
        ("255:0", (255, 0)),
        ("2", (2, None)),
        ("", (None, None)),
        ("junk", (None, None)),
    ],
)
def test_parse_exit_code(text: str, parsed: tuple[int | None, int | None]) -> None:
    assert parse_exit_code(text) == parsed


# ----------------------------------------------------------------------- sbatch


def test_sbatch_argv() -> None:
    assert sbatch_argv("/j/job.sh") == ["sbatch", "--parsable", "/j/job.sh"]
    assert sbatch_argv("/j/a b.sh", flags=["--dependency=afterok:1", "--hold"]) == [
        "sbatch",
        "--parsable",
        "--dependency=afterok:1",
        "--hold",
        "/j/a b.sh",
    ]


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [
        ("12345\n", "12345"),
        ("12345", "12345"),
        ("12345;devcluster\n", "12345"),
        ("sbatch: warning: something odd\n77\n", "77"),
        ("  42  \n\n", "42"),
    ],
)
def test_parse_sbatch_output(stdout: str, job_id: str) -> None:
    assert parse_sbatch_output(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "\n", "Submitted batch job\n", "error: no\n", "12a\n"])
def test_parse_sbatch_output_without_id(stdout: str) -> None:
    with pytest.raises(SubmissionError) as info:
        parse_sbatch_output(stdout)
    assert info.value.stdout == stdout


# ----------------------------------------------------------------------- squeue


def test_squeue_argv() -> None:
    argv = squeue_argv(["1", "2_3", "4"])
    assert argv[0] == "squeue"
    assert "--noheader" in argv
    assert "--array" in argv
    assert "--states=all" in argv
    assert "--jobs=1,2_3,4" in argv
    assert any(a.startswith("--format=%i|%T|") for a in argv)


SQUEUE_DOCUMENTED = """\
100|RUNNING|vm|2024-05-01T10:00:00|2024-05-01T11:00:00|None
101|PENDING||N/A|N/A|Dependency
102_3|RUNNING|vm|2024-05-01T10:00:00|2024-05-01T11:00:00|None
102_[5-7%2]|PENDING||N/A|N/A|JobArrayTaskLimit
103|COMPLETED|vm|2024-05-01T09:00:00|2024-05-01T09:01:00|None
104|PENDING||N/A|N/A|ReqNodeNotAvail, UnavailableNodes:vm[1-2]|odd
garbage line
"""


def test_parse_squeue_documented_format() -> None:
    jobs = parse_squeue(SQUEUE_DOCUMENTED)
    assert set(jobs) == {"100", "101", "102_3", "102_5", "102_6", "102_7", "103", "104"}
    assert jobs["100"] == JobInfo(
        job_id="100",
        state=JobState.RUNNING,
        exit_code=None,
        signal=None,
        reason="",
        node="vm",
        start="2024-05-01T10:00:00",
        end="2024-05-01T11:00:00",
        raw_state="RUNNING",
    )
    assert jobs["101"].reason == "Dependency"
    assert jobs["101"].node is None and jobs["101"].start is None
    assert jobs["102_6"].state is JobState.PENDING
    assert jobs["102_6"].reason == "JobArrayTaskLimit"
    assert jobs["103"].state.is_terminal
    assert jobs["104"].reason == "ReqNodeNotAvail, UnavailableNodes:vm[1-2]|odd"


def test_parse_squeue_empty() -> None:
    assert parse_squeue("") == {}


@pytest.mark.parametrize(
    ("stderr", "invalid"),
    [
        ("slurm_load_jobs error: Invalid job id specified\n", True),
        ("squeue: error: Invalid job id specified\n", True),
        ("slurm_load_jobs error: Unable to contact slurm controller\n", False),
        ("", False),
    ],
)
def test_squeue_says_invalid_id(stderr: str, invalid: bool) -> None:
    assert squeue_says_invalid_id(stderr) is invalid


# ------------------------------------------------------------------------ sacct


def test_sacct_argv() -> None:
    argv = sacct_argv(["5", "6_1"])
    assert argv[0] == "sacct"
    assert {"--noheader", "--parsable2", "--allocations", "--jobs=5,6_1"} <= set(argv)
    assert "--format=JobID,State,ExitCode,NodeList,Start,End,Reason" in argv
    assert not any(a.startswith("--starttime") for a in argv)
    since = sacct_argv(["5"], since="2024-05-01T10:00:00")
    assert since[-1] == "--starttime=2024-05-01T10:00:00"
    assert not any(a.startswith("--starttime") for a in argv)
    assert sacct_argv(["5"], since="2026-01-02T03:04:05")[-1] == "--starttime=2026-01-02T03:04:05"


SACCT_DOCUMENTED = """\
200|COMPLETED|0:0|vm|2024-05-01T10:00:00|2024-05-01T10:00:05|None
200.batch|COMPLETED|0:0|vm|2024-05-01T10:00:00|2024-05-01T10:00:05|
200.extern|COMPLETED|0:0|vm|2024-05-01T10:00:00|2024-05-01T10:00:05|
200.0|COMPLETED|0:0|vm|2024-05-01T10:00:00|2024-05-01T10:00:05|
201|CANCELLED by 0|0:15|vm|2024-05-01T10:00:00|2024-05-01T10:00:09|None
202|FAILED|1:0|vm|2024-05-01T10:00:00|2024-05-01T10:00:01|NonZeroExitCode
203|TIMEOUT|0:0|vm|2024-05-01T10:00:00|2024-05-01T10:01:30|None
204_2|OUT_OF_MEMORY|0:125|vm|2024-05-01T10:00:00|2024-05-01T10:00:03|None
204_[3-4]|PENDING|0:0|None assigned|Unknown|Unknown|JobArrayTaskLimit
205|PREEMPTED|0:15|vm|2024-05-01T10:00:00|2024-05-01T10:00:30|None
205|RUNNING|0:0|vm|2024-05-01T10:00:40|Unknown|None
"""


def test_parse_sacct_documented_format() -> None:
    jobs = parse_sacct(SACCT_DOCUMENTED)
    assert set(jobs) == {"200", "201", "202", "203", "204_2", "204_3", "204_4", "205"}
    assert jobs["200"].state is JobState.COMPLETED
    assert (jobs["200"].exit_code, jobs["200"].signal) == (0, 0)
    assert jobs["201"].state is JobState.CANCELLED
    assert jobs["201"].raw_state == "CANCELLED by 0"
    assert (jobs["201"].exit_code, jobs["201"].signal) == (0, 15)
    assert jobs["202"].exit_code == 1
    assert jobs["202"].reason == "NonZeroExitCode"
    assert jobs["203"].state is JobState.TIMEOUT
    assert jobs["204_2"].state is JobState.OUT_OF_MEMORY
    assert jobs["204_4"].state is JobState.PENDING
    assert jobs["204_4"].node is None  # "None assigned"
    assert jobs["204_4"].start is None
    assert jobs["205"].state is JobState.RUNNING  # the last row wins
    assert jobs["205"].end is None


# --------------------------------------------------------------------- scancel


@pytest.mark.parametrize(
    ("kwargs", "argv"),
    [
        ({}, ["scancel", "1", "2_3"]),
        ({"signal": "USR1"}, ["scancel", "--signal=USR1", "1", "2_3"]),
        ({"signal": "TERM", "batch": True}, ["scancel", "--signal=TERM", "--batch", "1", "2_3"]),
        ({"batch": True}, ["scancel", "--batch", "1", "2_3"]),
    ],
)
def test_scancel_argv(kwargs: dict[str, object], argv: list[str]) -> None:
    assert scancel_argv(["1", "2_3"], **kwargs) == argv  # type: ignore[arg-type]


# -------------------------------------------------------------------- scontrol


def test_scontrol_argvs() -> None:
    assert scontrol_show_config_argv() == ["scontrol", "show", "config"]


SHOW_CONFIG_DOCUMENTED = """\
Configuration data as of 2024-05-01T10:00:00
AccountingStorageType   = accounting_storage/slurmdbd
JobRequeue              = 1
MaxArraySize            = 1001
MinJobAge               = 30 sec
PreemptMode             = REQUEUE
SchedulerParameters     = batch_sched_delay=0,sched_min_interval=0

Cgroup Support Configuration:
CgroupMountpoint        = /sys/fs/cgroup

Slurmctld(primary) at vm is UP
"""


def test_parse_show_config_documented() -> None:
    config = parse_show_config(SHOW_CONFIG_DOCUMENTED)
    assert config["MaxArraySize"] == "1001"
    assert config["MinJobAge"] == "30 sec"
    assert config["PreemptMode"] == "REQUEUE"
    assert config["JobRequeue"] == "1"
    assert config["SchedulerParameters"] == "batch_sched_delay=0,sched_min_interval=0"
    assert config["CgroupMountpoint"] == "/sys/fs/cgroup"
    assert not any(" " in key for key in config)


# ------------------------------------------------- real output from the dev cluster
# Captured with tests/unit/golden/capture_slurm_output.py (Slurm 22.05.8); ids in
# golden/real/job_ids.json. The hostile_* files come from jobs whose names and
# output paths hold spaces, quotes, $, ;, #, backticks and unicode.

REAL = GOLDEN / "real"


def real(name: str) -> str:
    return (REAL / name).read_text(encoding="utf-8")


def real_ids() -> dict[str, str]:
    ids: dict[str, str] = json.loads(real("job_ids.json"))
    return ids


def test_real_squeue_live() -> None:
    ids = real_ids()
    jobs = parse_squeue(real("squeue_live.stdout"))
    array = ids["array"]
    assert {f"{array}_{i}" for i in range(21)} <= set(jobs)
    assert array not in jobs
    assert jobs[f"{array}_0"].state is JobState.RUNNING
    assert jobs[f"{array}_0"].node == "vm"
    assert jobs[f"{array}_20"].state is JobState.PENDING
    assert jobs[f"{array}_20"].reason == "JobArrayTaskLimit"
    assert jobs[f"{array}_20"].node is None
    assert jobs[ids["dependent"]].reason == "Dependency"
    assert jobs[ids["failed"]].state is JobState.FAILED
    assert jobs[ids["failed"]].reason == "NonZeroExitCode"
    assert jobs[ids["running"]].state is JobState.RUNNING
    assert all(info.exit_code is None for info in jobs.values())


def test_real_squeue_compressed_array_is_expanded() -> None:
    array = real_ids()["array"]
    jobs = parse_squeue(real("squeue_array_compressed.stdout"))
    assert set(jobs) == {f"{array}_{i}" for i in range(21)}
    assert jobs[f"{array}_2"].state is JobState.PENDING
    assert jobs[f"{array}_1"].state is JobState.RUNNING


def test_real_squeue_after_cancel_and_requeue() -> None:
    ids = real_ids()
    jobs = parse_squeue(real("squeue_after_cancel_requeue.stdout"))
    assert jobs[ids["cancelled"]].state is JobState.CANCELLED
    assert jobs[f"{ids['array']}_0"].state is JobState.COMPLETED
    requeued = jobs[ids["requeued"]]
    assert requeued.state is JobState.PENDING
    assert requeued.reason == "BeginTime"
    assert requeued.end is None  # squeue prints NONE


def test_real_squeue_invalid_ids() -> None:
    assert real("squeue_invalid_id.returncode").strip() == "1"
    assert squeue_says_invalid_id(real("squeue_invalid_id.stderr"))
    assert parse_squeue(real("squeue_invalid_id.stdout")) == {}
    # one unknown id among known ones is silently left out, exit code 0
    assert set(parse_squeue(real("squeue_one_invalid_one_valid.stdout"))) == {real_ids()["failed"]}


def test_real_sacct_live() -> None:
    ids = real_ids()
    jobs = parse_sacct(real("sacct_live.stdout"))
    assert jobs[ids["failed"]].state is JobState.FAILED
    assert (jobs[ids["failed"]].exit_code, jobs[ids["failed"]].signal) == (3, 0)
    signalled = jobs[ids["signalled"]]
    assert (signalled.state, signalled.exit_code, signalled.signal) == (JobState.FAILED, 0, 9)
    assert jobs[f"{ids['array']}_20"].state is JobState.PENDING
    assert jobs[ids["dependent"]].node is None  # "None assigned"


def test_real_sacct_after_cancel_and_requeue() -> None:
    ids = real_ids()
    jobs = parse_sacct(real("sacct_after_cancel_requeue.stdout"))
    cancelled = jobs[ids["cancelled"]]
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.raw_state.startswith("CANCELLED by ")
    assert jobs[f"{ids['array']}_1"].state is JobState.COMPLETED
    assert jobs[f"{ids['array']}_7"].state is JobState.PENDING
    assert jobs[ids["requeued"]].state is JobState.PENDING


def test_real_sacct_steps_are_skipped() -> None:
    text = real("sacct_with_steps.stdout")
    assert ".batch|" in text
    jobs = parse_sacct(text)
    assert not any("." in job_id for job_id in jobs)
    # the allocation row, not the batch step, gives the job's state
    assert jobs[real_ids()["signalled"]].state is JobState.FAILED


@pytest.mark.parametrize(
    ("name", "key", "first", "last"),
    [
        ("sacct_duplicates_requeued.stdout", "requeued", JobState.REQUEUED, JobState.PENDING),
        ("sacct_duplicates_preempted.stdout", "timeout", JobState.PREEMPTED, JobState.RUNNING),
    ],
)
def test_real_sacct_duplicates_keep_last(
    name: str, key: str, first: JobState, last: JobState
) -> None:
    text = real(name)
    assert JobState.parse(text.splitlines()[0].split("|")[1]) is first
    assert parse_sacct(text)[real_ids()[key]].state is last


def test_real_show_config() -> None:
    config = parse_show_config(real("scontrol_show_config.stdout"))
    assert config["MaxArraySize"] == "1001"
    assert config["MinJobAge"] == "30 sec"
    assert config["PreemptMode"] == "REQUEUE"
    assert config["JobRequeue"] == "1"
    assert config["PreemptType"] == "preempt/partition_prio"
    assert config["ClusterName"] == "devcluster"
    assert len(config) > 150


def hostile_expected() -> list[dict[str, str]]:
    expected: list[dict[str, str]] = json.loads(real("hostile_expected.json"))
    return expected


def test_real_hostile_script_is_what_we_render() -> None:
    """The submitted script is byte-for-byte what render_batch_script gives today."""
    want = hostile_expected()[1]
    script = render_batch_script(
        options={
            "job_name": want["name"],
            "output": str(Path(want["stdout"]).parent / "out 1 %j 100%%.txt"),
            "time": "1",
            "mem": "50M",
        },
        command=["bash", "-c", 'echo "arg=$1 name=$SLURM_JOB_NAME"', "x", "a b; $(c)"],
        env={"HOSTILE": want["name"]},
    )
    assert script == real("hostile_job_1.sh")


def test_real_final_states() -> None:
    ids = real_ids()
    jobs = parse_sacct(real("sacct_final.stdout"))
    assert {f"{ids['array']}_{i}" for i in range(21)} <= set(jobs)
    assert all(jobs[f"{ids['array']}_{i}"].state is JobState.COMPLETED for i in range(21))
    assert jobs[ids["running"]].state is JobState.CANCELLED
    assert (jobs[ids["running"]].exit_code, jobs[ids["running"]].signal) == (0, 15)
    never_ran = jobs[ids["dependent"]]
    assert never_ran.state is JobState.CANCELLED
    assert never_ran.node is None and never_ran.start is None
    assert jobs[ids["failed"]].exit_code == 3
    assert all(info.state.is_terminal for info in jobs.values())
    squeue = parse_squeue(real("squeue_final.stdout"))
    assert squeue[ids["dependent"]].reason == "DependencyNeverSatisfied"
    assert all(info.state.is_terminal for info in squeue.values())


def test_parse_slurm_conf_reads_keys_case_insensitively_and_gives_up_on_includes() -> None:
    from slurm._slurm.commands import parse_slurm_conf

    text = (
        "# a comment\nClusterName=dev  # trailing\nMaxArraySize=5000\n"
        "NodeName=n1 CPUs=4\n  SchedulerParameters=batch_sched_delay=1\nmaxarraysize=7\n"
    )
    assert parse_slurm_conf(text) == {
        "clustername": "dev",
        "maxarraysize": "5000",  # the first one counts, as for Slurm
        "nodename": "n1",
        "schedulerparameters": "batch_sched_delay=1",
    }
    assert parse_slurm_conf("MaxArraySize=10\ninclude /etc/slurm/more.conf\n") is None
    assert parse_slurm_conf("") == {}


SCRIPT = "/home/a/jobs/add 'x' $(y)/job.sh"


@pytest.mark.parametrize(
    ("ps_output", "running"),
    [
        (f"-bash\nsbatch --parsable {SCRIPT}\nps wwx -o args=\n", True),
        (f"/usr/bin/sbatch --parsable --dependency=afterok:12 {SCRIPT}\n", True),
        ("sbatch --parsable /home/a/jobs/other/job.sh\n", False),  # another job's
        (f"vi {SCRIPT}\n", False),  # not an sbatch
        (f"sbatch --parsable {SCRIPT}.old\n", False),
        ("", False),
    ],
)
def test_sbatch_running_finds_only_the_sbatch_of_that_script(ps_output: str, running: bool) -> None:
    assert sbatch_running(ps_output, SCRIPT) is running


# `scontrol -o show job` on the dev cluster (Slurm 22.05), its first fields.
_SHOW_JOB = (
    "JobId=423 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901593 "
    "Nice=0 Account=root QOS=normal JobState={state} Reason=None Dependency=(null) "
    "Requeue={requeue} Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:01\n"
)


@pytest.mark.parametrize(
    ("state", "requeue", "never"),
    [("PREEMPTED", "0", True), ("PREEMPTED", "1", False), ("RUNNING", "0", True)],
)
def test_says_never_requeued(state: str, requeue: str, never: bool) -> None:
    from slurm._slurm.commands import says_never_requeued, scontrol_show_job_argv

    assert says_never_requeued(_SHOW_JOB.format(state=state, requeue=requeue)) is never
    assert not says_never_requeued("")
    assert scontrol_show_job_argv("7_1") == ["scontrol", "-o", "show", "job", "7_1"]


def test_a_jobs_own_submissions_keep_the_sites_export_policy_and_never_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside a job, the parent's SLURM_*/SBATCH_* variables are dropped from the Slurm
    commands it runs, but not SLURM_CONF nor a site's SBATCH_EXPORT; the SDK's password
    is dropped everywhere."""
    from slurm._slurm.client import SlurmClient
    from slurm._transport.base import CommandResult

    seen: list[list[str]] = []

    class Recorder:
        def run(self, argv: list[str], **_: object) -> CommandResult:
            seen.append(argv)
            return CommandResult(argv, 0, "", "")

    for name, value in {
        "SLURM_JOB_ID": "7",
        "SBATCH_PARTITION": "x",
        "SLURM_CONF": "/etc/slurm/slurm.conf",
        "SBATCH_EXPORT": "NONE",
        "SLURM_SDK_PASSWORD": "hunter2",
    }.items():
        monkeypatch.setenv(name, value)
    SlurmClient(Recorder(), strip_inherited=True).run(["squeue"])  # type: ignore[arg-type]
    SlurmClient(Recorder(), strip_inherited=False).run(["squeue"])  # type: ignore[arg-type]
    inner, outer = seen
    assert inner[0] == "env" and inner[-1] == "squeue"
    dropped = {a[2:] for a in inner if a.startswith("-u")}
    assert {"SLURM_JOB_ID", "SBATCH_PARTITION", "SLURM_SDK_PASSWORD"} <= dropped
    assert not {"SLURM_CONF", "SBATCH_EXPORT"} & dropped
    assert outer == ["env", "-uSLURM_SDK_PASSWORD", "squeue"]
