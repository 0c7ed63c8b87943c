"""``squeue --only-job-state`` (24.05 and later): its argv, its parser on the outputs of
the 24.11 and 26.05 dev clusters (``tests/unit/golden/capture_squeue_states.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeslurm import FakeJob, FakeSlurm

from slurm._slurm.client import SlurmClient
from slurm._slurm.commands import JobState
from slurm._slurm.states import knows_only_job_state, parse_squeue_states, squeue_states_argv

GOLDEN = Path(__file__).parent / "golden"
RELEASES = ["24.11", "26.05"]


def _real(release: str, name: str) -> str:
    return (GOLDEN / f"real-{release}" / name).read_text()


def _ids(release: str) -> dict[str, str]:
    ids: dict[str, str] = json.loads(_real(release, "squeue_states_ids.json"))
    return ids


@pytest.mark.parametrize(
    ("version", "knows"),
    [
        ("slurm-wlm 22.05.8", False),
        ("slurm 23.11.10", False),
        ("slurm 24.05.0", True),
        ("slurm-wlm 24.11.5", True),
        ("slurm-wlm 26.05.5", True),
        ("25.05", True),
        ("", False),
        ("unknown", False),
    ],
)
def test_which_releases_have_it(version: str, knows: bool) -> None:
    assert knows_only_job_state(version) is knows


def test_argv_asks_for_ids_and_states_of_every_element_ended_ones_included() -> None:
    assert squeue_states_argv(["12", "13_4"]) == [
        "squeue",
        "--only-job-state",
        "--noheader",
        "--array",
        "--states=all",
        "--jobs=12,13_4",
        "--format=%i|%T",
    ]


@pytest.mark.parametrize("release", RELEASES)
def test_parse_the_states_of_a_real_queue(release: str) -> None:
    ids = _ids(release)
    assert _real(release, "squeue_states.returncode").strip() == "0"
    states = parse_squeue_states(_real(release, "squeue_states.stdout"))
    array = ids["array"]
    assert states == {
        ids["running"]: JobState.RUNNING,
        f"{array}_0": JobState.RUNNING,
        **{f"{array}_{i}": JobState.PENDING for i in range(1, 6)},
        ids["dependent"]: JobState.PENDING,
        ids["completed"]: JobState.COMPLETED,
        ids["failed"]: JobState.FAILED,
    }


@pytest.mark.parametrize("release", RELEASES)
def test_a_compressed_array_range_is_expanded(release: str) -> None:
    ids = _ids(release)
    compressed = _real(release, "squeue_states_compressed.stdout")
    assert f"{ids['array']}_[1-5]|PENDING" in compressed.splitlines()
    assert parse_squeue_states(compressed) == parse_squeue_states(
        _real(release, "squeue_states.stdout")
    )


@pytest.mark.parametrize("release", RELEASES)
def test_unknown_ids_are_left_out_without_an_error(release: str) -> None:
    ids = _ids(release)
    assert _real(release, "squeue_states_unknown.returncode").strip() == "0"
    assert parse_squeue_states(_real(release, "squeue_states_unknown.stdout")) == {}
    one = parse_squeue_states(_real(release, "squeue_states_one_unknown.stdout"))
    assert one == {ids["running"]: JobState.RUNNING}


def test_lines_that_are_not_id_and_state_are_skipped() -> None:
    text = "             JOBID ST\n|RUNNING\n7|WEIRD_NEW_STATE\n8|RUNNING\n"
    assert parse_squeue_states(text) == {"7": JobState.UNKNOWN, "8": JobState.RUNNING}


def _client(release: str) -> tuple[FakeSlurm, SlurmClient, str]:
    fake = FakeSlurm(release=release)
    slurm = SlurmClient(fake, strip_inherited=False)
    job = FakeJob("41", "#!/bin/sh\n", state="RUNNING", node="node1")
    fake.jobs[job.key] = job
    return fake, slurm, job.key


def _squeues(fake: FakeSlurm) -> list[list[str]]:
    return [argv for argv in fake.commands if argv[0] == "squeue" and "--version" not in argv]


def test_jobs_last_seen_running_are_polled_with_their_states_alone() -> None:
    fake, slurm, key = _client("24.11.5")
    first = slurm.look([key])  # nothing known yet: the full squeue
    assert first.infos[key].node == "node1"
    assert [a[1] for a in _squeues(fake)] == ["--noheader"]
    again = slurm.look([key], running=first.infos)
    assert again.infos == first.infos and again.queued == {key} and again.calls == 1
    assert _squeues(fake)[-1] == squeue_states_argv([key])
    # Once the state differs, the full squeue tells the rest.
    fake.jobs[key].state = "COMPLETED"
    fake.jobs[key].reason = "None"
    after = slurm.look([key], running=first.infos)
    assert after.infos[key].state is JobState.COMPLETED
    assert [a[1] for a in _squeues(fake)[-2:]] == ["--only-job-state", "--noheader"]
    assert slurm.calls == 4  # squeue --version reaches no controller: not counted


def test_before_24_05_the_light_poll_is_never_sent() -> None:
    fake, slurm, key = _client("22.05.8")
    first = slurm.look([key])
    slurm.look([key], running=first.infos)
    assert not [a for a in _squeues(fake) if "--only-job-state" in a]
    assert not slurm.knows_only_job_state()
