"""Directories the SDK trusts must be the user's own: one shell check, one parser.

The job base directory, its index, the environments directory and the wheel
store hold what jobs unpickle and run. If another user could write one of
them (or rename it away, through a parent they can write), they could swap a
payload or an environment and have their code run as this user. So each is
created 0700 and, whether new or old, must:

- be owned by the user and not be writable by group or others;
- sit under parents that are each owned by the user or by root, and that are
  not writable by group or others unless they carry the sticky bit (``/tmp``).

:func:`build_script` creates the directories (``umask 077``) and prints, for
each, its real path and the owner and mode of it and every parent;
:func:`parse_output` turns that into :class:`Problem` s that say what to do.
The preflight (:mod:`slurm._client.preflight`) runs the script with its other checks,
so it costs no extra round trip. Pure string work here, but for
:func:`local_report`, the same report for this machine's own directories.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Problem",
    "build_script",
    "file_problem",
    "judge",
    "judge_links",
    "local_report",
    "parse_files",
    "parse_output",
    "parse_uid",
]


@dataclass(frozen=True)
class Problem:
    """One directory that fails the check."""

    path: str
    detail: str
    fix: str


def build_script(paths: Sequence[str], *, create: bool = True, files: str = "") -> str:
    """POSIX shell that (optionally) creates each path 0700 and reports its ownership.

    Output lines: ``trust|uid|UID`` once, then per path ``i``
    ``trust|i|real|REALPATH`` or ``trust|i|missing|ERROR``; one
    ``trust|i|given|UID MODE KIND|PATH`` for the path as given (links not followed)
    and each of its parents; one ``trust|i|stat|UID MODE|PATH`` for the real path
    and for each parent up to ``/``;
    with ``files`` (a glob such as ``*.pkl``), ``trust|i|file|UID MODE|NAME`` for
    each file in the path that matches it.
    """
    if not paths:
        return ""
    q = shlex.quote
    make = 'mkdir -p -- "$d" 2>/dev/null; ' if create else ""
    each_file = (
        [
            f'    for f in "$r"/{files}; do',
            '      [ -f "$f" ] && s=$(stat -c "%u %a" -- "$f" 2>/dev/null) && '
            'echo "trust|$i|file|$s|${f##*/}"',
            "    done",
        ]
        if files
        else []
    )
    return "\n".join(
        [
            '(umask 077; echo "trust|uid|$(id -u)"',
            "i=0",
            "for d in " + " ".join(q(p) for p in paths) + "; do",
            f'  {make}if r=$(cd -P -- "$d" 2>&1 && pwd -P); then',
            '    echo "trust|$i|real|$r"; p=$d',
            "    case $p in /*) ;; *) p=$PWD/$p ;; esac",
            '    p=${p%"${p##*[!/]}"}; p=${p:-/}',  # "jobs/" would follow the link "jobs"
            # Each path and its parents, found without a process each (`dirname`), then
            # one `stat` for them all: the check costs a few processes, not dozens.
            "    set --; while :; do",
            '      set -- "$@" "$p"; [ "$p" = / ] && break; p=${p%/*}; p=${p:-/}',
            "    done",
            '    stat -c "trust|$i|given|%u %a %F|%n" -- "$@" 2>/dev/null',
            "    p=$r; set --; while :; do",
            '      set -- "$@" "$p"; [ "$p" = / ] && break; p=${p%/*}; p=${p:-/}',
            "    done",
            '    stat -c "trust|$i|stat|%u %a|%n" -- "$@" 2>/dev/null',
            *each_file,
            '  else echo "trust|$i|missing|$(printf %s "$r" | tr "\\n" " ")"; fi',
            "  i=$((i+1))",
            "done)",
        ]
    )


def local_report(paths: Sequence[str], *, files: str = "") -> str:
    """What :func:`build_script` (``create=False``) prints, found with ``os`` calls.

    For this machine's own directories: the same lines, for the same parsers,
    without starting a shell and a ``stat`` per parent (a result check costs
    microseconds instead of a dozen processes). ``stat`` reports a symbolic
    link itself, so ``lstat`` is used alike.
    """
    lines = [f"trust|uid|{os.getuid()}"]
    for index, path in enumerate(paths):
        try:
            real = os.path.realpath(path, strict=True)
            if not os.path.isdir(real):
                raise NotADirectoryError(f"not a directory: {path}")
        except OSError as exc:
            lines.append(f"trust|{index}|missing|{exc}")
            continue
        lines.append(f"trust|{index}|real|{real}")
        lines += _given_lines(index, path)
        current = real
        while True:
            with contextlib.suppress(OSError):
                st = os.lstat(current)
                mode = stat.S_IMODE(st.st_mode)
                lines.append(f"trust|{index}|stat|{st.st_uid} {mode:o}|{current}")
            if current == "/":
                break
            current = os.path.dirname(current)
        if files:
            for name in sorted(os.listdir(real)):
                if name.startswith(".") or not fnmatch.fnmatchcase(name, files):
                    continue
                full = os.path.join(real, name)
                with contextlib.suppress(OSError):
                    if os.path.isfile(full):
                        st = os.lstat(full)
                        lines.append(
                            f"trust|{index}|file|{st.st_uid} {stat.S_IMODE(st.st_mode):o}|{name}"
                        )
    return "\n".join(lines) + "\n"


def _given_lines(index: int, path: str) -> list[str]:
    """``given`` lines for ``path`` and each of its parents as given (links not followed)."""
    lines = []
    current = os.path.join(os.getcwd(), path).rstrip("/") or "/"  # "jobs/" follows "jobs"
    while True:
        with contextlib.suppress(OSError):
            st = os.lstat(current)
            kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "directory"
            lines.append(
                f"trust|{index}|given|{st.st_uid} {stat.S_IMODE(st.st_mode):o} {kind}|{current}"
            )
        parent = os.path.dirname(current)
        if parent == current:
            return lines
        current = parent


def parse_output(stdout: str, paths: Sequence[str]) -> list[Problem]:
    """The problems :func:`build_script`'s output shows; a path it did not report fails."""
    uid: int | None = None
    real: dict[int, str] = {}
    missing: dict[int, str] = {}
    stats: dict[int, list[tuple[int, int, str]]] = {}
    given: dict[int, list[tuple[int, int, bool, str]]] = {}
    for line in stdout.splitlines():
        parts = line.split("|", 4)
        if len(parts) < 3 or parts[0] != "trust":
            continue
        if parts[1] == "uid" and parts[2].isdigit():
            uid = int(parts[2])
            continue
        if not parts[1].isdigit():
            continue
        index = int(parts[1])
        if parts[2] == "real" and len(parts) >= 4:
            real[index] = "|".join(parts[3:])
        elif parts[2] == "missing":
            missing[index] = "|".join(parts[3:])
        elif parts[2] == "stat" and len(parts) == 5:
            owner, _, mode = parts[3].partition(" ")
            if owner.isdigit() and mode.isdigit():
                stats.setdefault(index, []).append((int(owner), int(mode, 8), parts[4]))
        elif parts[2] == "given" and len(parts) == 5:
            owner, mode, kind = [*parts[3].split(" ", 2), "", ""][:3]
            if owner.isdigit() and mode.isdigit():
                link = kind == "symbolic link"
                given.setdefault(index, []).append((int(owner), int(mode, 8), link, parts[4]))
    problems: list[Problem] = []
    for index, path in enumerate(paths):
        if index in missing or index not in real or not stats.get(index) or uid is None:
            why = missing.get(index) or "the check did not run"
            problems.append(Problem(path, f"cannot create or inspect {path!r}: {why}", _FIX_CREATE))
            continue
        problem = judge_links(path, given.get(index, []), uid) or judge(
            path, real[index], stats[index], uid
        )
        if problem is not None:
            problems.append(problem)
    return problems


def parse_files(stdout: str) -> dict[int, dict[str, tuple[int, int]]]:
    """The ``files`` lines of :func:`build_script`'s output: path index -> name -> (uid, mode)."""
    found: dict[int, dict[str, tuple[int, int]]] = {}
    for line in stdout.splitlines():
        parts = line.split("|", 4)
        if len(parts) == 5 and parts[0] == "trust" and parts[1].isdigit() and parts[2] == "file":
            owner, _, mode = parts[3].partition(" ")
            if owner.isdigit() and mode.isdigit():
                found.setdefault(int(parts[1]), {})[parts[4]] = (int(owner), int(mode, 8))
    return found


def file_problem(path: str, owner: int, mode: int, uid: int) -> Problem | None:
    """Why the file at ``path`` (in a trusted directory) may not be unpickled, if it may not."""
    if owner != uid:
        return Problem(
            path,
            f"{path} is owned by uid {owner}, not by you (uid {uid})",
            "remove it (it was not written by your job) and run the job again",
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return Problem(
            path,
            f"{path} has mode {mode:04o}: others may have changed it",
            "remove it and run the job again",
        )
    return None


def parse_uid(stdout: str) -> int | None:
    """The user id :func:`build_script` reported."""
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[:2] == ["trust", "uid"] and parts[2].isdigit():
            return int(parts[2])
    return None


_FIX_CREATE = "pass a directory you own and can create (job_base_dir=, packaging env_dir=)"


def judge_links(path: str, given: list[tuple[int, int, bool, str]], uid: int) -> Problem | None:
    """The problem with the symbolic links on the way to ``path`` as given: (owner, mode,
    is a link, path) of it and of each parent, leaf first. A link's owner can point it
    elsewhere after any check of its target, and whoever may write the directory that
    holds it can put another link there: so each link must be the user's or root's, and
    each directory above it must pass the same test as the target's parents."""
    links = [k for k, (_, _, link, _) in enumerate(given) if link]
    if not links:
        return None
    for owner, mode, link, where in given[links[0] :]:
        if owner not in (uid, 0):
            what = "the symbolic link" if link else "the directory"
            return Problem(
                path,
                f"{path} goes through {what} {where}, owned by uid {owner}, who could point "
                "it elsewhere after any check",
                "use the directory's real path, or a link of your own",
            )
        if not link and mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
            return Problem(
                path,
                f"{path} goes through a symbolic link in {where} (mode {mode:04o}), where "
                "others may replace it",
                "use the directory's real path",
            )
    return None


def judge(path: str, real: str, chain: list[tuple[int, int, str]], uid: int) -> Problem | None:
    """The problem with ``path`` (really ``real``), given (owner, mode, path) of it and of
    each parent up to ``/``, for user ``uid``; ``None`` if it may be trusted."""
    owner, mode, _ = chain[0]
    shown = path if real == path else f"{path} (really {real})"
    if owner != uid:
        return Problem(
            path,
            f"{shown} is owned by uid {owner}, not by you (uid {uid}): its owner could swap "
            "the files your jobs load",
            f"use a directory of your own (e.g. under your home), or have it given to you "
            f"(`chown {uid} {real}`)",
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return Problem(
            path,
            f"{shown} has mode {mode:04o}: its group or other users may write it and swap "
            "the files your jobs load",
            f"`chmod 700 {shlex.quote(real)}` (or `chmod go-w`)",
        )
    for parent_owner, parent_mode, parent in chain[1:]:
        if parent_owner not in (uid, 0):
            return Problem(
                path,
                f"{shown} sits under {parent}, owned by uid {parent_owner}, who could rename "
                "it away and put another in its place",
                "use a directory whose parents belong to you or to root",
            )
        if parent_mode & (stat.S_IWGRP | stat.S_IWOTH) and not parent_mode & stat.S_ISVTX:
            return Problem(
                path,
                f"{shown} sits under {parent} (mode {parent_mode:04o}), which others may "
                "write without the sticky bit: they could rename it away and put another in "
                "its place",
                f"`chmod o-w,g-w {shlex.quote(parent)}` or `chmod +t {shlex.quote(parent)}`, "
                "or use a directory elsewhere",
            )
    return None
