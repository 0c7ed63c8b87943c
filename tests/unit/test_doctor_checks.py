"""The doctor's pure parts: its script's sections, parsers of real Slurm/coreutils output,
each check's verdict, and the one-line-a-check rendering."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from slurm._client.doctor.checks import (
    FAIL,
    OK,
    SKIP,
    WARN,
    Check,
    DoctorReport,
    Partition,
    build_script,
    disk_check,
    owner_check,
    parse_df,
    parse_partitions,
    parse_sections,
    partitions_check,
    render_text,
    skew_check,
)

REAL = Path(__file__).parent / "golden" / "real"

# `df -Pk /tmp` on the dev machine.
DF = """\
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264212084 23708628  82682284      23% /
"""


def test_script_sections_round_trip_through_sh(tmp_path: Path) -> None:
    hostile = tmp_path / "it's; $(echo no) dir"
    hostile.mkdir()
    out = subprocess.run(
        ["sh", "-c", build_script(str(hostile))], capture_output=True, text=True
    ).stdout
    sections = parse_sections(out)
    assert {"clock", "user", "ping", "accounting", "partitions", "owner", "df"} <= set(sections)
    code, text = sections["owner"]
    assert code == 0 and len(text.split()) == 2
    assert parse_df(sections["df"][1]) is not None
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("@@begin a\nx\ny\n@@end a 0\n", {"a": (0, "x\ny")}),
        ("@@begin a\n@@end a 3\n@@begin b\nz\n", {"a": (3, ""), "b": (-1, "z")}),
        ("noise\n@@begin a\nx\n@@end a junk\n", {"a": (-1, "x")}),
        ("", {}),
    ],
)
def test_parse_sections(stdout: str, expected: dict[str, tuple[int, str]]) -> None:
    assert parse_sections(stdout) == expected


def test_parse_partitions_of_real_scontrol_output() -> None:
    parts = parse_partitions((REAL / "scontrol_show_partition.stdout").read_text())
    assert [p.name for p in parts] == ["debug", "compute", "urgent"]
    debug = parts[0]
    assert (debug.default, debug.state, debug.max_time, debug.total_cpus) == (
        True,
        "UP",
        "UNLIMITED",
        "8",
    )
    assert debug.extra["PreemptMode"] == "REQUEUE"
    assert not parts[1].default


def test_parse_df() -> None:
    assert parse_df(DF) == (82682284 // 1024, 264212084 // 1024)
    assert parse_df("df: /nope: No such file or directory\n") is None
    assert parse_df("") is None


def _part(name: str, state: str = "UP", default: bool = False) -> Partition:
    return Partition(name, state, default, "1-00:00:00", "4", "2", "16", "UNLIMITED")


@pytest.mark.parametrize(
    ("parts", "wanted", "status", "blocking", "words"),
    [
        ([_part("debug", default=True)], None, OK, False, "debug* (up, time 1-00:00:00"),
        ([_part("debug")], "gpu", FAIL, True, "'gpu' does not exist"),
        ([_part("debug", "DOWN")], "debug", FAIL, True, "'debug' is DOWN"),
        ([_part("debug"), _part("old", "INACTIVE")], "debug", WARN, False, "not UP: old"),
        ([], None, FAIL, True, "no partition"),
    ],
)
def test_partitions_check(
    parts: list[Partition], wanted: str | None, status: str, blocking: bool, words: str
) -> None:
    check = partitions_check(parts, wanted, "here")
    assert (check.status, check.blocking) == (status, blocking)
    assert words in check.detail + check.fix


@pytest.mark.parametrize(
    ("text", "code", "status", "words"),
    [
        ("alice 700", 0, OK, "yours, mode 700"),
        ("bob 700", 0, FAIL, "belongs to 'bob'"),
        ("alice 777", 0, WARN, "chmod go-w"),
        ("alice 1777", 0, OK, "mode 1777"),  # sticky: others cannot touch your entries
        ("stat: cannot stat", 1, FAIL, "cannot stat"),
    ],
)
def test_owner_check(text: str, code: int, status: str, words: str) -> None:
    check = owner_check(text, code, "alice", "/base dir")
    assert check.status == status
    assert words in check.detail + check.fix


@pytest.mark.parametrize(
    ("available_kb", "status"), [(82682284, OK), (500 * 1024, WARN), (10 * 1024, FAIL)]
)
def test_disk_check(available_kb: int, status: str) -> None:
    text = DF.splitlines()[0] + f"\n/dev/x 999999999 0 {available_kb} 1% /\n"
    check = disk_check(text, 0, "/b")
    assert check.status == status
    assert check.blocking is (status == FAIL)
    assert disk_check("", 1, "/b").status == WARN


def test_skew_check() -> None:
    check, skew = skew_check("1000.5\n", 999.0, 1000.0)
    assert (check.status, skew) == (OK, 1.0)
    check, skew = skew_check("1100", 999.0, 1001.0)
    assert check.status == WARN and skew == 100.0 and "NTP" in check.fix
    check, skew = skew_check("1000.%N", 1000.0, 1000.0)  # busybox date
    assert check.status == OK
    check, skew = skew_check("garbage", 1.0, 2.0)
    assert (check.status, skew) == (WARN, None)


def test_render_text_one_line_a_check_with_fixes() -> None:
    report = DoctorReport(
        "ssh alice@login:22",
        "ssh",
        [
            Check("connectivity", OK, "ssh alice@login:22 answers"),
            Check("accounting", WARN, "sacct does not answer", "ask the admins"),
            Check("partitions", FAIL, "'gpu' does not exist", "use debug", blocking=True),
            Check("clock", SKIP, "needs a working login"),
        ],
    )
    assert render_text(report) == (
        "slurm doctor: ssh alice@login:22 (ssh)\n"
        "ok   connectivity  ssh alice@login:22 answers\n"
        "WARN accounting    sacct does not answer -> fix: ask the admins\n"
        "FAIL partitions    'gpu' does not exist -> fix: use debug\n"
        "skip clock         needs a working login\n"
        "NOT ready: 1 problem(s) block submission"
    )
    data = report.to_dict()
    assert data["ok"] is False
    assert data["problems"] == ["partitions: 'gpu' does not exist. use debug"]
    assert data["warnings"] == ["accounting: sacct does not answer. ask the admins"]
    assert [c["name"] for c in data["checks"]] == [c.name for c in report.checks]
    report.checks.pop(2)
    assert render_text(report).endswith("ready to submit (1 warning(s))")
