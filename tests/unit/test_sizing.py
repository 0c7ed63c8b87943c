"""What a retry asks for (pure sizing rules) and the learned requests' store."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from slurm._client.learned import LearnedSizes, learned_key
from slurm._slurm.retry import Attempt, Retry, current_rule, read_attempts
from slurm._slurm.sizing import (
    Request,
    exclude_nodes,
    killed_at_rss,
    measured_limits,
    next_request,
    split_hostlist,
)
from slurm._slurm.usage import Usage
from slurm._transport.local import LocalTransport

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("grow", "limits", "rss_mb", "expected"),
    [
        # Killed at 316 MB of 200M: MaxRSS x 2 beats 200M x 2.
        (2.0, {"mem": "200M"}, 316, Request({"mem": "632M"}, "measured")),
        # Killed just past its limit (cgroups): the grown limit is the floor.
        (2.0, {"mem": "200M"}, 150, Request({"mem": "400M"}, "grown")),
        # Nothing measured: grown.
        (1.5, {"mem": "1G"}, None, Request({"mem": "1536M"}, "grown")),
        # Per CPU: MaxRSS over the CPUs it had.
        (2.0, {"mem_per_cpu": "100M"}, 800, Request({"mem_per_cpu": "400M"}, "measured")),
    ],
)
def test_an_oom_retry_asks_for_the_most_of_grown_and_measured(
    grow: float, limits: dict[str, str], rss_mb: int | None, expected: Request
) -> None:
    used = Usage("sacct", max_rss_bytes=rss_mb * MIB if rss_mb else None, cpus=4)
    retry = Retry(grow={"mem": grow})
    request = next_request(retry, "OUT_OF_MEMORY", 1, {**limits, "time": "5"}, used)
    assert request == Request({**expected.limits, "time": "5"}, expected.rule)


def test_a_measured_request_is_never_below_the_grown_one_and_respects_the_cap() -> None:
    for rss_mb in range(1, 2000, 37):
        used = Usage("sacct", max_rss_bytes=rss_mb * MIB)
        request = next_request(Retry(grow={"mem": 1.5}), "OUT_OF_MEMORY", 1, {"mem": "512M"}, used)
        assert request is not None
        new = int(request.limits["mem"].rstrip("M"))
        assert new >= 768 and new >= rss_mb * 1.5
    capped = Retry(grow={"mem": 2.0}, max_mem="1G")
    used = Usage("sacct", max_rss_bytes=3000 * MIB)
    assert measured_limits(capped, "OUT_OF_MEMORY", {"mem": "600M"}, used) == {"mem": "1024M"}
    # At its cap already: no retry.
    assert next_request(capped, "OUT_OF_MEMORY", 1, {"mem": "1G"}, used) is None


def test_a_timeout_retry_sizes_from_elapsed_and_the_limit_slurm_applied() -> None:
    retry = Retry(grow={"time": 2.0})
    # time="00:00:10": Slurm applied a minute and the job ran 65 s; 10 s x 2 would round
    # up to the same one minute again.
    used = Usage("sacct", elapsed_s=65.0, time_limit_s=60.0)
    request = next_request(retry, "TIMEOUT", 1, {"time": "00:00:10"}, used)
    assert request == Request({"time": "0-00:03:00"}, "measured")
    # Elapsed at its limit: the same as grown, so grown.
    used = Usage("sacct", elapsed_s=600.0, time_limit_s=600.0)
    assert next_request(retry, "TIMEOUT", 1, {"time": "10"}, used) == Request(
        {"time": "0-00:20:00"}, "grown"
    )
    capped = Retry(grow={"time": 2.0}, max_time="00:02:00")
    assert next_request(capped, "TIMEOUT", 1, {"time": "1"}, Usage("sacct", elapsed_s=80.0)) == (
        Request({"time": "0-00:02:00"}, "grown")
    )
    assert next_request(capped, "TIMEOUT", 1, {"time": "2"}, Usage("sacct", elapsed_s=130.0)) is (
        None
    )


def test_a_node_failure_excludes_the_nodes_it_ran_on() -> None:
    retry = Retry(on={"NODE_FAIL", "BOOT_FAIL"})
    assert next_request(retry, "NODE_FAIL", 1, {"time": "5"}, nodes="node1") == Request(
        {"time": "5", "exclude": "node1"}, "exclude"
    )
    # The user's own exclusion stays; nodes from accounting when squeue had none.
    used = Usage("sacct", nodes="node[3-4]")
    assert next_request(retry, "BOOT_FAIL", 1, {"exclude": "node1,node3"}, used) == Request(
        {"exclude": "node1,node3,node[3-4]"}, "exclude"
    )
    assert next_request(retry, "NODE_FAIL", 1, {"time": "5"}) == Request({"time": "5"}, "same")
    assert next_request(retry, "NODE_FAIL", 3, {"time": "5"}, nodes="node1") is None
    assert exclude_nodes({}, "") == {}
    assert split_hostlist("node[1-3,7],gpu1,a") == ["node[1-3,7]", "gpu1", "a"]


def test_the_peak_of_a_memory_kill_from_slurmstepds_line() -> None:
    tail = (
        "slurmstepd-vm: error: StepId=7.batch exceeded memory limit (329900032 > 209715200), "
        "being killed\nslurmstepd-vm: error: Exceeded job memory limit\n"
    )
    assert killed_at_rss(tail) == 329900032
    assert killed_at_rss("Exceeded job memory limit") is None and killed_at_rss("") is None


def test_the_attempts_file_says_which_rule_chose_each_request() -> None:
    first = Attempt("5", "OUT_OF_MEMORY", {"mem": "200M"}, rule="learned")
    second = Attempt("6", "NODE_FAIL", {"mem": "632M"}, rule="measured")
    text = (
        first.to_json(next_id="6", next_limits={"mem": "632M"}, next_submitted=1.0,
                      next_rule="measured") + "\n"
        + second.to_json(next_id="7", next_limits={"mem": "632M", "exclude": "node1"},
                         next_submitted=2.0, next_rule="exclude") + "\n"
    )  # fmt: skip
    earlier, current, limits = read_attempts(text)
    assert [a.rule for a in earlier] == ["learned", "measured"]
    assert (current, limits, current_rule(text)) == (
        "7",
        {"mem": "632M", "exclude": "node1"},
        "exclude",
    )
    # A file written before rules existed: the first asked, the later ones grown.
    old = '{"job_id": "5", "state": "TIMEOUT", "limits": {}, "next_id": "6"}\n'
    assert read_attempts(old)[0][0].rule == "asked" and current_rule(old) == "grown"


def test_retry_learn_must_be_a_bool() -> None:
    assert Retry(learn=True).learn and not Retry().learn
    with pytest.raises(Exception, match="learn must be True or False"):
        Retry(learn="yes")  # type: ignore[arg-type]


def test_learned_sizes_round_trip_and_refuse_what_they_cannot_trust(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = tmp_path / "jobs"
    base.mkdir(mode=0o700)
    store = LearnedSizes(LocalTransport(), f"{base}/.learned")
    key = learned_key("mod.fit", {"mem": "1G", "partition": "debug"})
    assert key != learned_key("mod.fit", {"mem": "2G", "partition": "debug"})
    assert key.startswith("mod.fit-")
    assert store.get(key) is None  # nothing learned yet: no warning either
    store.remember(key, "fit", {"mem": "3072M", "time": "10", "exclude": "node1"}, "42")
    record = json.loads((base / ".learned" / f"{key}.json").read_text())
    assert record["limits"] == {"mem": "3072M", "time": "10"}  # never an exclusion
    assert oct((base / ".learned").stat().st_mode & 0o777) == "0o700"
    assert LearnedSizes(LocalTransport(), f"{base}/.learned").get(key) == {
        "mem": "3072M",
        "time": "10",
    }

    path = base / ".learned" / f"{key}.json"
    caplog.set_level(logging.WARNING)
    os.chmod(path, 0o666)  # noqa: S103 (others may have written it: a miss, with a warning)
    assert LearnedSizes(LocalTransport(), f"{base}/.learned").get(key) is None
    assert "others may have changed it" in caplog.text
    os.chmod(path, 0o600)
    for bad in ("{not json", '{"version": 99, "limits": {"mem": "1G"}}',
                '{"version": 1, "limits": {"mem": "lots"}}',
                '{"version": 1, "limits": {"cpus": "4"}}'):  # fmt: skip
        path.write_text(bad)
        caplog.clear()
        assert LearnedSizes(LocalTransport(), f"{base}/.learned").get(key) is None
        assert "ignoring the learned size" in caplog.text
