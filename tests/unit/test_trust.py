"""The ownership check of the directories the SDK trusts (pure parser, table-driven)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from slurm._transport import trust
from slurm._transport.trust import build_script, parse_output


def _output(uid: int, chain: list[tuple[int, str, str]], path: str = "/h/u/jobs") -> str:
    lines = [f"trust|uid|{uid}", f"trust|0|real|{chain[0][2]}"]
    lines += [f"trust|0|stat|{owner} {mode}|{where}" for owner, mode, where in chain]
    return "\n".join(lines) + "\n"


HOME = [(1000, "700", "/h/u/jobs"), (1000, "755", "/h/u"), (0, "755", "/h"), (0, "755", "/")]


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        (HOME, None),
        ([(1000, "700", "/tmp/jobs"), (0, "1777", "/tmp"), (0, "755", "/")], None),
        ([(1000, "755", "/h/u/jobs"), *HOME[1:]], None),
        ([(1000, "777", "/h/u/jobs"), *HOME[1:]], "has mode 0777"),
        ([(1000, "770", "/h/u/jobs"), *HOME[1:]], "has mode 0770"),
        ([(1001, "700", "/h/u/jobs"), *HOME[1:]], "owned by uid 1001, not by you"),
        ([(1000, "700", "/s/jobs"), (0, "777", "/s"), (0, "755", "/")], "without the sticky"),
        ([(1000, "700", "/s/jobs"), (0, "2775", "/s"), (0, "755", "/")], "without the sticky"),
        ([(1000, "700", "/p/jobs"), (1001, "755", "/p"), (0, "755", "/")], "owned by uid 1001"),
    ],
)
def test_trusted_directory_rules(chain: list[tuple[int, str, str]], expected: str | None) -> None:
    problems = parse_output(_output(1000, chain), ["/h/u/jobs"])
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0].detail and problems[0].fix


def test_a_path_the_script_did_not_report_fails() -> None:
    [problem] = parse_output("trust|uid|1000\n", ["/x"])
    assert "the check did not run" in problem.detail
    [problem] = parse_output("trust|uid|1000\ntrust|0|missing|Permission denied\n", ["/x"])
    assert "Permission denied" in problem.detail


def test_symlinked_path_is_judged_by_its_target() -> None:
    out = _output(1000, [(1000, "777", "/real/jobs"), (0, "755", "/real"), (0, "755", "/")])
    [problem] = parse_output(out, ["/h/u/jobs"])
    assert "/h/u/jobs (really /real/jobs) has mode 0777" in problem.detail


def test_paths_are_quoted_in_the_script() -> None:
    script = build_script(["/a b/$(touch x)"])
    assert "'/a b/$(touch x)'" in script
    assert build_script([]) == ""


def test_local_report_says_what_the_shell_script_says(tmp_path: Path) -> None:
    """The in-process report for this machine's directories reads exactly as the shell's."""
    job = tmp_path / "base" / "job"
    job.mkdir(parents=True, mode=0o700)
    (job / "result.pkl").write_bytes(b"x")
    (job / "open.pkl").write_bytes(b"x")
    (job / "open.pkl").chmod(0o666)
    (job / ".hidden.pkl").write_bytes(b"x")
    (job / "notes.txt").write_text("x")
    (job / "link.pkl").symlink_to(job / "result.pkl")
    (job / "dir.pkl").mkdir()
    (tmp_path / "sticky").mkdir(mode=0o700)
    (tmp_path / "sticky").chmod(0o1777)
    (tmp_path / "alias").symlink_to(job)
    paths = [str(job), str(tmp_path / "alias"), str(tmp_path / "missing"), str(tmp_path / "sticky")]
    script = trust.build_script(paths, create=False, files="*.pkl")
    shell = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    local = trust.local_report(paths, files="*.pkl")

    def meaning(out: str) -> tuple[object, ...]:
        without_errors = [line for line in out.splitlines() if "|missing|" not in line]
        return (
            sorted(without_errors),
            [p.path for p in trust.parse_output(out, paths)],
            [p for p in trust.parse_output(out, paths) if p.path != paths[2]],
            trust.parse_files(out),
            trust.parse_uid(out),
        )

    assert meaning(local) == meaning(shell)
    assert "|2|missing|" in local
    assert set(trust.parse_files(local)[0]) == {"result.pkl", "open.pkl", "link.pkl"}


def _both_reports(path: str) -> list[str]:
    """The problems the shell check and the ``os`` check find with ``path``."""
    out = subprocess.run(
        ["sh", "-c", build_script([path], create=False)], capture_output=True, text=True, check=True
    ).stdout
    shell = [p.detail for p in parse_output(out, [path])]
    local = [p.detail for p in parse_output(trust.local_report([path]), [path])]
    assert shell == local
    return shell


def test_a_link_another_user_owns_is_not_followed(
    tmp_path: Path, intruder: pwd.struct_passwd
) -> None:
    """A base directory reached through a neighbour's symbolic link is refused, even
    though its target is the user's own private directory: the neighbour could re-point
    the link after the check."""
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    sticky = tmp_path / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    link = sticky / "jobs"
    link.symlink_to(mine)
    assert _both_reports(str(link)) == []  # the user's own link: followed
    os.lchown(link, intruder.pw_uid, intruder.pw_gid)
    [detail] = _both_reports(str(link))
    assert f"symbolic link {link}, owned by uid {intruder.pw_uid}" in detail
    [detail] = _both_reports(f"{link}/")  # the same link, however it is spelled
    assert "symbolic link" in detail


def test_a_link_in_a_directory_others_may_write_is_not_followed(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    open_dir = tmp_path / "group"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # no sticky bit: anyone may replace the link
    (open_dir / "jobs").symlink_to(mine)
    [detail] = _both_reports(str(open_dir / "jobs"))
    assert "where others may replace it" in detail
