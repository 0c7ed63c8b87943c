"""Option names, values, precedence and flag rendering."""

from __future__ import annotations

import datetime
import doctest
import gzip
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

import slurm._slurm.options
from slurm._slurm.options import (
    ALIASES,
    RESERVED_OPTIONS,
    SBATCH_OPTIONS,
    SDK_OPTIONS,
    literal_filename_pattern,
    merge_options,
    normalize_option_name,
    normalize_options,
    sbatch_flags,
    split_options,
)
from slurm.errors import ConfigurationError, InvalidOptionError


def test_doctests() -> None:
    assert doctest.testmod(slurm._slurm.options).failed == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("cpus_per_task", "cpus_per_task"),
        ("cpus-per-task", "cpus_per_task"),
        ("--cpus-per-task", "cpus_per_task"),
        ("CPUS_PER_TASK", "cpus_per_task"),
        ("Job-Name", "job_name"),
        ("name", "job_name"),
        ("memory", "mem"),
        ("mem", "mem"),
        ("gpus_per_node", "gpus_per_node"),
        ("no-requeue", "no_requeue"),
        ("packaging", "packaging"),
        ("max_requeues", "max_requeues"),
        ("python", "python"),
        ("setup", "setup"),
        ("requeue_grace", "requeue_grace"),
    ],
)
def test_normalize_option_name(raw: str, expected: str) -> None:
    assert normalize_option_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "suggested"),
    [
        ("cpu_per_task", "cpus_per_task"),
        ("cpus-per-tasks", "cpus_per_task"),
        ("partion", "partition"),
        ("jobname", "job_name"),
        ("ntask", "ntasks"),
        ("gpu_per_node", "gpus_per_node"),
        ("packging", "packaging"),
    ],
)
def test_unknown_name_suggests_closest(raw: str, suggested: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        normalize_option_name(raw)
    message = str(info.value)
    assert f"Unknown Slurm option {raw!r}" in message
    assert f"'{suggested}'" in message
    assert "man sbatch" in message
    assert "packaging" in message  # lists the SDK's own options


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(InvalidOptionError, match="Unknown Slurm option 'zzzzzz'") as info:
        normalize_option_name("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_invalid_option_error_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        normalize_option_name("nope_nope")
    with pytest.raises(ValueError):
        normalize_option_name("nope_nope")


def test_required_names_present() -> None:
    required = {
        "cpus_per_task",
        "job_name",
        "mem",
        "time",
        "partition",
        "account",
        "gres",
        "gpus_per_node",
        "ntasks_per_node",
        "exclusive",
        "dependency",
        "array",
        "output",
        "error",
        "requeue",
        "no_requeue",
        "signal",
        "open_mode",
        "qos",
        "constraint",
        "nodes",
        "ntasks",
        "mem_per_cpu",
        "mail_type",
    }
    assert required <= SBATCH_OPTIONS
    assert {
        "packaging",
        "python",
        "max_requeues",
        "requeue_grace",
        "requeue_on_time_limit",
        "retry",
        "setup",
        "modules",
        "cache",
        "cache_key",
        "cache_on",
        "container_image",
        "container_mounts",
        "container_workdir",
        "container_runtime",
        "container_gpu_vendor",
        "srun_args",
        "packaging_dockerfile",
        "packaging_context",
        "packaging_registry",
        "packaging_name",
        "packaging_push",
        "packaging_platform",
        "packaging_tls_verify",
        "packaging_runtime",
        "packaging_build_args",
        "packaging_build_secrets",
        "packaging_no_cache",
        "packaging_use_digest",
    } == SDK_OPTIONS
    assert not SBATCH_OPTIONS & SDK_OPTIONS
    assert set(RESERVED_OPTIONS) <= SBATCH_OPTIONS
    assert set(ALIASES.values()) <= SBATCH_OPTIONS
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in SBATCH_OPTIONS)


def test_sbatch_options_match_installed_man_page() -> None:
    """Every long option the installed sbatch man page documents is known (when present)."""
    man = Path("/usr/share/man/man1/sbatch.1.gz")
    if not man.exists():
        pytest.skip("sbatch man page not installed")
    text = gzip.decompress(man.read_bytes()).decode("utf-8", "replace")
    documented = set()
    for line in text.splitlines():
        if line.startswith("\\fB\\-"):
            for name in re.findall(r"\\-\\-([a-z](?:[a-z0-9]|\\-)*)", line):
                documented.add(name.replace("\\-", "_"))
    assert documented - SBATCH_OPTIONS == set()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"Job-Name": "x", "memory": 512}, {"job_name": "x", "mem": 512}),
        ({"exclusive": None}, {"exclusive": None}),
        ({"exclusive": True}, {"exclusive": True}),
        ({"requeue": False}, {"requeue": False}),
        ({"nodes": 2, "nice": -5}, {"nodes": 2, "nice": -5}),
        ({"output": PurePosixPath("/tmp/a b/%j.out")}, {"output": "/tmp/a b/%j.out"}),
        ({"packaging": {"type": "wheel"}}, {"packaging": {"type": "wheel"}}),
        ({"setup": ["module load cuda"]}, {"setup": ["module load cuda"]}),
        ({"parsable": False}, {"parsable": False}),  # asking to leave it out is harmless
    ],
)
def test_normalize_options(options: dict[str, Any], expected: dict[str, Any]) -> None:
    assert normalize_options(options) == expected


@pytest.mark.parametrize(
    "value",
    [
        5,
        0,
        "5",
        "05:30",
        "1:00:00",
        "00:05:00",
        "2-0",
        "2-12",
        "2-12:30",
        "2-12:30:15",
        "UNLIMITED",
        "infinite",
        "Infinite",
    ],
)
def test_time_accepted(value: Any) -> None:
    assert normalize_options({"time": value}) == {"time": value}


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (datetime.timedelta(minutes=5), "0-00:05:00"),
        (datetime.timedelta(days=1, hours=2, minutes=3, seconds=4), "1-02:03:04"),
    ],
)
def test_time_timedelta(value: datetime.timedelta, rendered: str) -> None:
    assert normalize_options({"time": value}) == {"time": rendered}


@pytest.mark.parametrize(
    "value", ["5m", "1h", "1:2:3:4", "-5", "a-b", "1.5", 1.5, -1, "", "1-", "1 day"]
)
def test_time_rejected(value: Any) -> None:
    with pytest.raises(InvalidOptionError, match=r"Accepted:.*D-H:M:S"):
        normalize_options({"time": value})


@pytest.mark.parametrize("name", ["mem", "mem_per_cpu", "mem_per_gpu", "memory"])
@pytest.mark.parametrize("value", [0, 4096, "4096", "4G", "512M", "1T", "100K", "4g"])
def test_memory_accepted(name: str, value: Any) -> None:
    assert list(normalize_options({name: value}).values()) == [value]


@pytest.mark.parametrize("value", ["1.5G", "4GB", "4 G", "G", "-1", -1, 1.5, "lots"])
def test_memory_rejected(value: Any) -> None:
    with pytest.raises(InvalidOptionError, match=r"\[K\|M\|G\|T\]"):
        normalize_options({"mem": value})


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"job_name": "a\nb"}, "newline"),
        ({"job_name": "a\rb"}, "newline"),
        ({"comment": "a\x00b"}, "NUL"),
        ({"job_name": ""}, "empty value"),
        ({"job_name": b"bytes"}, "type bytes"),
        ({"job_name": ["a"]}, "type list"),
        ({"name": "a", "job_name": "b"}, "both set 'job_name'"),
        ({"mem": "1G", "memory": "2G"}, "both set 'mem'"),
        ({"cpus-per-task": 1, "cpus_per_task": 2}, "both set 'cpus_per_task'"),
        ({"parsable": None}, "--parsable"),
        ({"wrap": "echo hi"}, "setup="),
        ({"wait": True}, "Job.wait"),
        ({"test_only": True}, "no job id"),
    ],
)
def test_normalize_options_rejects(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        normalize_options(options)
    assert fragment in str(info.value)


def test_merge_precedence_later_wins() -> None:
    cluster = {"partition": "debug", "time": "10", "account": "acc"}
    config = {"partition": "cpu", "mem": "1G"}
    decorator = {"time": "30", "name": "train"}
    with_options = {"memory": "2G", "exclusive": None}
    submit = {"job-name": "train-7", "exclusive": False}
    assert merge_options(cluster, config, decorator, with_options, submit) == {
        "partition": "cpu",
        "time": "30",
        "account": "acc",
        "mem": "2G",
        "job_name": "train-7",
        "exclusive": False,
    }


def test_merge_skips_none_and_validates_every_layer() -> None:
    assert merge_options(None, {"time": 5}, None) == {"time": 5}
    assert merge_options() == {}
    with pytest.raises(InvalidOptionError):
        merge_options({"time": 5}, {"cpu_per_task": 2})


def test_merge_same_key_across_layers_is_not_a_conflict() -> None:
    assert merge_options({"name": "a"}, {"job_name": "b"}) == {"job_name": "b"}


def test_split_options() -> None:
    sbatch, sdk = split_options({"time": "5", "python": "python3", "setup": ["x"], "mem": 1})
    assert sbatch == {"time": "5", "mem": 1}
    assert sdk == {"python": "python3", "setup": ["x"]}


@pytest.mark.parametrize(
    ("options", "flags"),
    [
        ({}, []),
        ({"time": "00:05:00"}, ["--time=00:05:00"]),
        ({"exclusive": None}, ["--exclusive"]),
        ({"exclusive": True}, ["--exclusive"]),
        ({"exclusive": False}, []),
        ({"exclusive": "user"}, ["--exclusive=user"]),
        ({"cpus_per_task": 4}, ["--cpus-per-task=4"]),
        ({"job_name": "my job; echo $HOME"}, ["--job-name=my job; echo $HOME"]),
        ({"output": PurePosixPath("/a/b.out")}, ["--output=/a/b.out"]),
        (
            {"time": "5", "account": "a", "python": "py", "packaging": "auto", "nodes": 1},
            ["--account=a", "--nodes=1", "--time=5"],
        ),
    ],
)
def test_sbatch_flags(options: dict[str, Any], flags: list[str]) -> None:
    assert sbatch_flags(options) == flags


def test_sbatch_flags_sorted_and_stable() -> None:
    options = merge_options({"time": "5", "partition": "p", "account": "a", "mem": "1G"})
    flags = sbatch_flags(options)
    assert flags == sorted(flags)
    assert flags == sbatch_flags(dict(reversed(options.items())))


def test_all_public_names_exported() -> None:
    public = {n for n in vars(slurm._slurm.options) if not n.startswith("_")}
    assert set(slurm._slurm.options.__all__) <= public
    for name in ("SBATCH_OPTIONS", "SDK_OPTIONS", "ALIASES", "merge_options", "sbatch_flags"):
        assert name in slurm._slurm.options.__all__


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/a/b.out", "/a/b.out"),
        ("/runs/100% done/%j.txt", "/runs/100%% done/%%j.txt"),
        (PurePosixPath("/x y/'q' \"d\" $v;#"), "/x y/'q' \"d\" $v;#"),
    ],
)
def test_literal_filename_pattern(path: Any, pattern: str) -> None:
    assert literal_filename_pattern(path) == pattern


@pytest.mark.parametrize("path", ["/a\\b", "/a\nb", "/a\x00b"])
def test_literal_filename_pattern_rejects(path: str) -> None:
    with pytest.raises(InvalidOptionError, match="backslash"):
        literal_filename_pattern(path)


# --- options a task may not set, and SDK options checked at decoration -------------

REFUSED_AT_DECORATION = [
    ({"output": "run.log"}, "job.get_stdout()"),
    ({"error": "run.err"}, "job.get_stderr()"),
    ({"comment": "mine"}, "job_name="),
    ({"dependency": "afterok:12"}, "task.after(job)"),
    ({"array": "0-3"}, "task.map(items)"),
    ({"clusters": "other"}, "make a Cluster for the other one"),
    ({"python": 3}, "path of an interpreter"),
    ({"python": ""}, "path of an interpreter"),
    ({"packaging": "bogus"}, "must be one of"),
    ({"packaging": {"type": "wheel", "nope": 1}}, "unknown"),
    ({"setup": 5}, "shell line"),
    ({"max_requeues": -1}, "whole number >= 0"),
    ({"requeue_grace": 0}, "whole number >= 1"),
]


@pytest.mark.parametrize(("options", "hint"), REFUSED_AT_DECORATION)
def test_task_refuses_options_it_could_not_honour_at_decoration(
    options: dict[str, object], hint: str
) -> None:
    from slurm import task, workflow

    for decorator in (task, workflow):
        with pytest.raises(InvalidOptionError) as caught:
            decorator(**options)(lambda: None)
        assert hint in str(caught.value)
        assert next(iter(options)) in str(caught.value)


def test_refused_options_are_refused_in_with_options_and_cluster_defaults_too() -> None:
    from slurm import Cluster, task

    @task(time="1")
    def f() -> None:
        return None

    with pytest.raises(InvalidOptionError, match=r"task\.map"):
        f.with_options(array="1-2")
    with pytest.raises(InvalidOptionError, match=r"Cluster\(default_options=...\)"):
        Cluster("local", default_options={"output": "x"})


def test_task_accepts_its_own_interpreter_and_packaging() -> None:
    from slurm import task

    options = {
        "python": "/opt/py/bin/python3",
        "packaging": {"type": "wheel", "project": None},
        "setup": ["module load x"],
        "max_requeues": 0,
        "requeue_grace": 30,
        "output": False,  # False leaves an option out: nothing to refuse
    }
    assert task(**options)(lambda: None).options == options


# --- issue 12: values that used to slip through -------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("comment", True, "needs a value"),
        ("comment", None, "needs a value"),
        ("partition", None, "needs a value"),
        ("time", 10**30, "more than Slurm can hold"),
        ("time", "99999999999", "more than Slurm can hold"),
        ("time", "99999999-00", "more than Slurm can hold"),
        ("time", "\u0661\u0660", "Invalid value"),  # Arabic-Indic digits
        ("mem", 10**20, "more memory than Slurm can hold"),
        ("mem", "99999999999999T", "more memory than Slurm can hold"),
        ("cpus_per_task", -4, "whole number from 1"),
        ("cpus_per_task", 0, "whole number from 1"),
        ("cpus_per_task", 2.5, "whole number from 1"),
        ("nodes", float("nan"), "finite"),
        ("nice", float("inf"), "finite"),
        ("priority", 10**12, "out of the range"),
        ("job_name", "bad\udc80name", "cannot be encoded as UTF-8"),
    ],
)
def test_values_slurm_cannot_take_are_refused(name: str, value: object, words: str) -> None:
    with pytest.raises(InvalidOptionError, match=words):
        normalize_options({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("exclusive", None),
        ("exclusive", True),
        ("requeue", True),
        ("hold", None),
        ("time", "UNLIMITED"),
        ("time", 2**32 - 3),
        ("time", "1-00:00:00"),
        ("mem", "1T"),
        ("cpus_per_task", 1),
        ("nodes", "2-4"),
        ("nice", -5),
        ("comment", "naïve ünïcode ✓"),
    ],
)
def test_values_slurm_takes_are_kept(name: str, value: object) -> None:
    assert normalize_options({name: value}) == {name: value}
