"""Usage records and retry limits: pure parsing and arithmetic, with sacct's real output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slurm import Retry
from slurm._slurm.retry import (
    format_minutes,
    grown_limits,
    limits_of,
    mem_megabytes,
    next_limits,
    raised_one_of,
    time_seconds,
)
from slurm._slurm.usage import Usage, parse_duration, parse_usage_sacct, runner_usage, summarise
from slurm._wire.payload import envelope_for_exception
from slurm.errors import ConfigurationError

REAL = Path(__file__).parent / "golden" / "real"


def test_sacct_usage_of_a_job_that_held_300_mb_for_3_s() -> None:
    # sbatch --mem=400M --time=2: python holding 300 MB for 3 s, then `sleep 2`.
    usage = parse_usage_sacct((REAL / "sacct_usage_single.stdout").read_text())["761"]
    assert usage.source == "sacct" and usage.state == "COMPLETED"
    assert usage.queue_wait_s == 1.0 and usage.elapsed_s == 6.0
    assert usage.cpu_time_s == pytest.approx(0.827)
    assert usage.max_rss_bytes == 323672 * 1024  # from the .batch step row
    assert usage.mem_bytes == 400 * 1024**2 and usage.cpus == 1
    assert usage.time_limit_s == 120.0 and usage.nodes == "vm" and usage.gpus is None
    assert usage.mem_efficiency == pytest.approx(323672 / (400 * 1024))
    assert usage.cpu_efficiency == pytest.approx(0.827 / 6)
    assert usage.time_efficiency == pytest.approx(6 / 120)


def test_sacct_usage_of_array_elements_without_a_memory_sample() -> None:
    found = parse_usage_sacct((REAL / "sacct_usage_array.stdout").read_text())
    assert sorted(found) == ["797_0", "797_1"]
    assert found["797_0"].max_rss_bytes is None  # shorter than one accounting sample
    assert found["797_1"].mem_bytes == 2 * 1024**3


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00.827", 0.827), ("01:02", 62.0), ("1:00:00", 3600.0), ("2-01:00:00", 176400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_old_slurm_req_mem_per_cpu_and_gpus() -> None:
    line = "5|COMPLETED|2026-01-01T00:00:00|2026-01-01T00:00:10|2026-01-01T00:00:20|10|00:05.000|"
    line += "|4|1000Mc|10|n1|billing=4,cpu=4,gres/gpu=2,mem=4000M,node=1\n"
    usage = parse_usage_sacct(line)["5"]
    assert usage.mem_bytes == 4000 * 1024**2 and usage.gpus == 2 and usage.queue_wait_s == 10.0


def test_runner_figures_and_summary() -> None:
    text = json.dumps(
        {"submitted": 100.0, "started": 103.0, "ended": 108.5, "cpu_s": 0.1,
         "max_rss_bytes": 5 << 20, "cpus": 2, "mem_mb": 100, "node": "n1", "gpus": None}
    )  # fmt: skip
    usage = runner_usage(text, state="COMPLETED")
    assert usage is not None and usage.source == "runner"
    assert (usage.queue_wait_s, usage.elapsed_s, usage.mem_bytes) == (3.0, 5.5, 100 << 20)
    assert runner_usage("not json") is None
    summary = summarise(
        {0: usage, 1: Usage("sacct", elapsed_s=9.0, max_rss_bytes=1), 2: Usage("sacct")}
    )
    assert summary.count == 3 and summary.sources == {"runner": 1, "sacct": 2}
    assert summary.elapsed_s is not None and summary.elapsed_s.worst == 1
    assert (summary.elapsed_s.min, summary.elapsed_s.median, summary.elapsed_s.max) == (
        5.5,
        7.25,
        9.0,
    )
    assert summary.max_rss_bytes is not None and summary.max_rss_bytes.worst == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1, 60), ("1", 60), ("1:30", 90), ("01:00:00", 3600), ("1-2", 93600), ("1-0:01:01", 86461)],
)
def test_slurm_times(value: str | int, seconds: int) -> None:
    assert time_seconds(value) == seconds


def test_growth_after_timeout_and_out_of_memory() -> None:
    retry = Retry(grow={"time": 2.0, "mem": 1.5}, max_time="0:03:00")
    limits = limits_of({"time": 1, "mem": "1G", "partition": "debug"})
    assert limits == {"time": "1", "mem": "1G"}
    assert grown_limits(retry, "TIMEOUT", limits) == {"time": "0-00:02:00", "mem": "1G"}
    assert grown_limits(retry, "OUT_OF_MEMORY", limits) == {"time": "1", "mem": "1536M"}
    assert grown_limits(retry, "NODE_FAIL", limits) == limits
    capped = grown_limits(retry, "TIMEOUT", {"time": "0-00:02:00"})
    assert capped == {"time": "0-00:03:00"}
    assert next_limits(retry, "TIMEOUT", 1, {"time": "3"}) is None  # at its cap: pointless
    assert next_limits(retry, "TIMEOUT", 3, limits) is None  # max_attempts reached
    assert next_limits(retry, "FAILED", 1, limits) is None  # not a state it retries
    assert format_minutes(61) == "0-00:02:00" and mem_megabytes("2G") == 2048


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"on": {"FAILED"}}, "on names FAILED"),
        ({"grow": {"cpus": 2.0}}, "grow names 'cpus'"),
        ({"grow": {"time": 0.5}}, "must be a number >= 1"),
        ({"max_mem": "lots"}, "max_mem"),
        ({"exceptions": ("ValueError",)}, "exception types"),
    ],
)
def test_bad_retry_is_refused_with_what_to_do(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_growth_needs_a_limit_to_grow_from() -> None:
    with pytest.raises(ConfigurationError, match="sets no `mem=`"):
        Retry().check_limits("train", {"time": "5"})
    Retry(on={"TIMEOUT"}).check_limits("train", {"time": "5"})  # memory is not grown


def test_exception_retry_only_when_asked() -> None:
    failed = envelope_for_exception(ConnectionResetError("flaky"), job_id="1")
    assert raised_one_of(failed, (ConnectionError,))
    assert not raised_one_of(failed, (ValueError,)) and not raised_one_of(failed, ())


def test_a_memory_kill_by_the_accounting_gatherer_is_out_of_memory() -> None:
    from slurm._slurm.retry import ended_state

    # What slurmstepd wrote to a dev-cluster job's stderr (Slurm 22.05, OverMemoryKill).
    tail = (
        "slurmstepd-vm: error: StepId=1.batch exceeded memory limit (329900032 > 209715200), "
        "being killed\nslurmstepd-vm: error: Exceeded job memory limit\n"
    )
    assert ended_state("FAILED", tail) == "OUT_OF_MEMORY"
    assert ended_state("FAILED", "Traceback ...") == "FAILED"
    assert ended_state("TIMEOUT", tail) == "TIMEOUT"


@pytest.mark.parametrize(
    "values", [[3.0], [1.0, 5.0], [5.0, 1.0, 3.0], [4.0, 1.0, 2.0, 8.0], [2.0, 2.0, 9.0, 0.5, 7.0]]
)
def test_median_is_the_standard_librarys(values: list[float]) -> None:
    import statistics

    from slurm._slurm.usage import median

    assert median(values) == statistics.median(values)


def test_median_of_nothing_is_an_error() -> None:
    from slurm._slurm.usage import median

    with pytest.raises(ValueError, match="no values"):
        median([])
