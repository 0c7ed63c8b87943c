"""The job directories' small files and the index, read in batches: argv builders and parsers.

Pure. ``slurm jobs report`` and ``slurm dash`` read many small files of many job
directories in one command (:func:`head_argv`, split by :func:`split_head`) and
the whole index, or the part of it under one directory, in one ``grep``
(:func:`parse_index_grep`), instead of one read per file. A workflow's children
live under its ``tasks/`` (:func:`parent_of`); what a call depended on is in its
``depends_on.txt``, or in its script's ``--dependency`` (:func:`depends_of`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence

from slurm.inspect import expand_array_ids

__all__ = [
    "depends_of",
    "head_argv",
    "parent_of",
    "parse_depends",
    "parse_index_grep",
    "script_array_indices",
    "script_dependencies",
    "split_head",
]


def head_argv(paths: Sequence[str], *, limit: int = 262144) -> list[str]:
    """``head -v -c LIMIT -- PATHS``: many small files in one command, each under a header."""
    return ["head", "-v", "-c", str(limit), "--", *paths]


def split_head(stdout: str, paths: Sequence[str]) -> dict[str, str]:
    """The files in :func:`head_argv` output, by path (missing ones are absent).

    GNU head writes ``==> PATH <==`` before each file it could read, in the
    order given, and an empty line between files; a header is only taken for
    a path later in ``paths`` than the current file's, so a file's content
    cannot pose as an earlier file.
    """
    order = {f"==> {p} <==": i for i, p in enumerate(paths)}
    blocks: list[tuple[int, list[str]]] = []
    for line in stdout.splitlines(keepends=True):
        header = order.get(line.rstrip("\n"))
        if header is not None and (not blocks or header > blocks[-1][0]):
            blocks.append((header, []))
        elif blocks:
            blocks[-1][1].append(line)
    found = {}
    for number, (index, lines) in enumerate(blocks):
        text = "".join(lines)
        if number < len(blocks) - 1:  # the empty line head writes before the next header
            text = text[:-1] if text.endswith("\n") else text
        found[paths[index]] = text
    return found


def parse_index_grep(stdout: str, index_dir: str) -> dict[str, str]:
    """``grep -r -F -e DIR INDEX`` output as ``{job id: job directory}``; an entry that is
    not a plain absolute path (``..``, a relative one) is left out."""
    prefix = index_dir.rstrip("/") + "/"
    entries = {}
    for line in stdout.splitlines():
        if not line.startswith(prefix):
            continue
        name, sep, job_dir = line[len(prefix) :].partition(":")
        job_dir = job_dir.strip()
        # As JobStore.job_dir_of: a plain absolute path only (no "..", nothing odd).
        plain = job_dir.startswith("/") and posixpath.normpath(job_dir) == job_dir
        if sep and name.isdigit() and plain:
            entries[name] = job_dir
    return entries


def parent_of(job_dir: str, dirs: Iterable[str]) -> str | None:
    """The workflow directory among ``dirs`` that ``job_dir`` was submitted from, if any
    (a workflow's children live under ``WORKFLOW_DIR/tasks/``; the nearest wins)."""
    best = None
    for candidate in dirs:
        if job_dir.startswith(candidate + "/tasks/") and (
            best is None or len(candidate) > len(best)
        ):
            best = candidate
    return best


def parse_depends(text: str) -> list[tuple[str, str]]:
    """``depends_on.txt``: ``KIND JOB_ID`` lines as ``[(kind, job id)]``."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and re.fullmatch(r"\d+(?:_\d+)?", words[1]):
            found.append((words[0], words[1]))
    return found


_SBATCH_RE = re.compile(r"^#SBATCH\s+--(?P<key>[a-z-]+)=(?P<value>\S+)\s*$")


def _directive(script: str, key: str) -> str | None:
    for line in script.splitlines():
        match = _SBATCH_RE.match(line.strip())
        if match and match.group("key") == key:
            return match.group("value")
    return None


def script_dependencies(script: str) -> list[tuple[str, str]]:
    """The ``#SBATCH --dependency=afterok:1:2,afterany:3`` of a batch script, as pairs."""
    value = _directive(script, "dependency")
    found = []
    for part in (value or "").replace("?", ",").split(","):
        kind, *ids = part.split(":")
        found += [(kind, i) for i in ids if re.fullmatch(r"\d+(?:_\d+)?", i)]
    return found


def depends_of(depends_text: str | None, script: str) -> list[tuple[str, str]]:
    """What a call depended on: ``depends_on.txt`` when it has one, else its script's
    ``--dependency`` (which lacks jobs that had finished when it was submitted)."""
    if depends_text is not None:
        return parse_depends(depends_text)
    return script_dependencies(script)


def script_array_indices(script: str) -> list[int] | None:
    """The element indices of an array's batch script (``--array=0-9``), None for one job."""
    value = _directive(script, "array")
    if value is None:
        return None
    ids = expand_array_ids(f"0_[{value}]")
    return sorted({int(i.split("_")[1]) for i in ids if "_" in i})
