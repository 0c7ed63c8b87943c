"""Reclaiming space: old job directories, unused environments and wheels, the local cache.

Every submission leaves a job directory, and every change of a project leaves a
whole environment on the cluster. :func:`prune` removes, in one command on the
cluster:

- job directories (and their index entries) not changed for ``older_than_days``,
  unless Slurm still lists their job as pending or running, or a cache entry
  with a result points into them (``slurm cache clear`` first to let them go);
- environments not used for ``env_unused_days`` (each use touches its
  ``last_used``; an environment a live job runs in is kept), then every stored
  wheel no remaining environment links to;
- Apptainer images in the ``.sif`` cache (:mod:`slurm._client.packaging.sif`) not
  used for ``images_unused_days`` (each use touches the file; one a live job's
  script names is kept), and pulls left half-done for a day; their pins stay, so a
  later run pulls the pinned digest again;

and trims the local cache (``~/.cache/slurm-sdk``) to ``cache_max_bytes``,
oldest files first. Only what the SDK made and the user owns is touched: a job
directory holding the script the SDK wrote (with its marker line), an environment
holding the files the SDK writes, the cache's own parts; never a link's target, never
anything outside the job base directory, the environments directory and the cache.
``dry_run=True`` lists what would go.

Example::

    report = cluster.prune(older_than_days=14, env_unused_days=30, dry_run=True)
    print(report.render())
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from slurm._client.cache import ResultCache
from slurm._client.packaging.pins import IMAGE_CACHE_DIR
from slurm._client.packaging.remote import READY
from slurm._slurm.script import GENERATED_MARKER
from slurm._wire.layout import SCRIPT
from slurm.errors import ConfigurationError

if TYPE_CHECKING:
    from slurm._client.session import Session

__all__ = ["PruneReport", "build_script", "parse_output", "prune", "trim_cache"]

LAST_USED = "last_used"

logger = logging.getLogger(__name__)


@dataclass
class PruneReport:
    """What was removed (or, in a dry run, would be)."""

    dry_run: bool
    job_dirs: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    wheels: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    cache_files: list[str] = field(default_factory=list)
    cache_bytes: int = 0

    def render(self) -> str:
        """One line per removed item, then a summary."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            *(f"{verb} job directory {p}" for p in self.job_dirs),
            *(f"{verb} environment {p}" for p in self.environments),
            *(f"{verb} wheel {p}" for p in self.wheels),
            *(f"{verb} image {p}" for p in self.images),
            *(f"{verb} cached file {p}" for p in self.cache_files),
        ]
        lines.append(
            f"{verb} {len(self.job_dirs)} job directories, {len(self.environments)} "
            f"environments, {len(self.wheels)} wheels, {len(self.images)} images, "
            f"{len(self.cache_files)} cached files "
            f"({self.cache_bytes} bytes of cache)"
        )
        return "\n".join(lines)


def build_script(
    base_dir: str,
    envs_dir: str | None,
    *,
    job_minutes: int,
    env_minutes: int | None,
    keep: list[str],
    dry_run: bool,
    sif_dir: str | None = None,
    image_minutes: int | None = None,
) -> str:
    """The POSIX shell (GNU find) that removes, or lists, what :func:`prune` describes.

    ``keep`` are job directories of live jobs: never removed, and the
    environments and images their scripts run are kept. Prints ``job|PATH``,
    ``env|PATH``, ``wheel|PATH`` and ``image|PATH`` for each item. Every value is
    quoted.
    """
    q = shlex.quote
    remove = ":" if dry_run else "command rm -rf --"
    lines = [
        f'base={q(base_dir)}; drop() {{ {remove} "$@"; }}',
        "keep=" + q("\n".join(keep)),
        f"marker={q(GENERATED_MARKER)}; me=$(id -u)",
        # Only what the SDK made and the user owns: a directory (never a link: find does
        # not follow them) holding the script the SDK wrote, with its marker line.
        'find "$base" -mindepth 1 -maxdepth 1 -type d ! -name ".*" -user "$me" '
        f"-mmin +{int(job_minutes)} -print | while IFS= read -r d; do",
        f'  [ -f "$d/{SCRIPT}" ] && [ ! -L "$d/{SCRIPT}" ] && '
        f'grep -qxF -- "$marker" "$d/{SCRIPT}" || continue',
        '  printf "%s\\n" "$keep" | grep -qxF -- "$d" && continue',
        '  echo "job|$d"; drop "$d"',
        '  for i in "$base"/.index/*; do',
        '    [ -f "$i" ] && [ "$(cat -- "$i")" = "$d" ] && drop "$i"',
        "  done",
        "done",
    ]
    if envs_dir is not None and env_minutes is not None:
        lines += [
            f"envs={q(envs_dir)}",
            'used=$(printf "%s\\n" "$keep" | while IFS= read -r d; do',
            '  [ -n "$d" ] && grep -o -- "$envs/[0-9a-f]*/venv" "$d/job.sh" 2>/dev/null',
            "done)",
            # An environment the SDK made (ready.json, or the requirements it writes
            # first, for one whose creation failed) that the user owns; its age is that
            # of its last use, else of those files.
            'removed=$(find "$envs" -mindepth 1 -maxdepth 1 -type d ! -name ".*" -user "$me" | '
            "while IFS= read -r e; do",
            '  m="$e/' + LAST_USED + '"; [ -e "$m" ] || m="$e/' + READY + '"',
            '  [ -e "$m" ] || m="$e/requirements.txt"; [ -f "$m" ] || continue',
            f'  [ -z "$(find "$m" -mmin +{int(env_minutes)})" ] && continue',
            '  printf "%s\\n" "$used" | grep -qxF -- "$e/venv" && continue',
            '  [ -d "$e/.lock" ] && continue',  # being created right now
            '  printf "%s\\n" "$e"',
            "done)",
            'printf "%s\\n" "$removed" | while IFS= read -r e; do',
            '  [ -n "$e" ] && { echo "env|$e"; drop "$e"; }',
            "done",
            # Wheels no remaining environment links to (in a dry run too).
            'linked=$(find "$envs" -mindepth 3 -maxdepth 3 -path "*/wheels/*" -type l | '
            "while IFS= read -r l; do",
            '  printf "%s\\n" "$removed" | grep -qxF -- "${l%/wheels/*}" && continue',
            '  readlink -- "$l"',
            "done)",
            'find "$envs/.store" -mindepth 1 -maxdepth 1 -type d -user "$me" 2>/dev/null | '
            "while IFS= read -r w; do",
            '  printf "%s\\n" "$linked" | grep -qF -- "$w/" && continue',
            '  echo "wheel|$w"; drop "$w"',
            "done",
        ]
    if sif_dir is not None and image_minutes is not None:
        lines += [
            f"sifs={q(sif_dir)}",
            'usedsif=$(printf "%s\\n" "$keep" | while IFS= read -r d; do',
            '  [ -n "$d" ] && '
            'grep -o -- "$sifs/[a-z]*-sha256-[0-9a-f]*\\.sif" "$d/job.sh" 2>/dev/null',
            "done)",
            # The SDK's own names only, the user's own files (never a link).
            'find "$sifs" -mindepth 1 -maxdepth 1 -type f -name "*-sha256-*.sif" -user "$me" '
            f"-mmin +{int(image_minutes)} 2>/dev/null | while IFS= read -r f; do",
            '  printf "%s\\n" "$usedsif" | grep -qxF -- "$f" && continue',
            '  [ -d "$f.lock" ] && continue',  # being pulled right now
            '  echo "image|$f"; drop "$f"',
            "done",
            'find "$sifs" -mindepth 1 -maxdepth 1 -type f -name "*-sha256-*.sif.tmp-*" '
            '-user "$me" -mmin +1440 2>/dev/null | while IFS= read -r f; do',
            '  echo "image|$f"; drop "$f"',
            "done",
        ]
    lines.append("exit 0")  # a failed removal is reported on stderr, not as the status
    return "\n".join(lines) + "\n"


def parse_output(stdout: str, report: PruneReport) -> PruneReport:
    """Fill ``report`` from the script's ``KIND|PATH`` lines."""
    kinds = {
        "job": report.job_dirs,
        "env": report.environments,
        "wheel": report.wheels,
        "image": report.images,
    }
    for line in stdout.splitlines():
        kind, _, path = line.partition("|")
        if kind in kinds and path:
            kinds[kind].append(path)
    return report


#: The parts of the local cache the SDK writes (see :mod:`slurm._client.packaging.wheels`):
#: only these are trimmed, whatever ``$SLURM_SDK_CACHE_DIR`` names (a home directory too).
CACHE_PARTS = ("built", "repacked", "deps", "wheelhouse")


def trim_cache(directory: Path, max_bytes: int, *, dry_run: bool, report: PruneReport) -> None:
    """Remove the oldest of the user's own files in the SDK's parts of ``directory``
    (:data:`CACHE_PARTS`; links are not followed) until they hold at most ``max_bytes``."""
    files = []
    uid = os.getuid()
    for part in CACHE_PARTS:
        if (directory / part).is_symlink():
            continue
        for root, _, names in os.walk(directory / part):
            for name in names:
                path = Path(root, name)
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if info.st_uid == uid:
                    files.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        report.cache_files.append(str(path))
        report.cache_bytes += size
        total -= size
        if not dry_run:
            path.unlink(missing_ok=True)


def prune(
    session: Session,
    *,
    older_than_days: float,
    env_unused_days: float | None = None,
    cache_max_bytes: int | None = None,
    dry_run: bool = False,
    images_unused_days: float | None = None,
) -> PruneReport:
    """Remove old job directories, unused environments, wheels and images, trim the
    local cache.

    Args:
        cluster: whose job base directory (and environments directory) to prune.
        older_than_days: job directories unchanged for this long go, unless their
            job is still pending or running or a cached result is in them.
        env_unused_days: environments not used for this long go (``None``: keep all).
        cache_max_bytes: trim ``~/.cache/slurm-sdk`` to this size (``None``: leave it).
        images_unused_days: ``.sif`` images not used for this long go (``None``: keep all).
        dry_run: only list what would go.

    Raises:
        ConfigurationError: a negative age or size.
    """
    from slurm._client.packaging import envs_dir_for, interpreter_settings
    from slurm._client.packaging.wheels import cache_dir

    ages = [older_than_days, env_unused_days or 0, cache_max_bytes or 0, images_unused_days or 0]
    if any(not isinstance(a, int | float) or a < 0 for a in ages):
        raise ConfigurationError(
            "prune: older_than_days, env_unused_days, images_unused_days and cache_max_bytes "
            f"must be numbers >= 0, got {older_than_days!r}, {env_unused_days!r}, "
            f"{images_unused_days!r}, {cache_max_bytes!r}."
        )
    store = session.store
    report = PruneReport(dry_run=dry_run)
    ids = store.job_ids()
    infos = session.slurm.look(ids).infos if ids else {}
    live = {key.split("_", 1)[0] for key, info in infos.items() if info.state.is_active}
    keep = [store.job_dir_of(job_id) for job_id in ids if job_id in live]
    keep += ResultCache(session).kept_dirs()  # results that cache=True calls still use
    envs_dir = envs_dir_for(session, interpreter_settings(session).spec)
    script = build_script(
        store.base_dir,
        envs_dir if env_unused_days is not None else None,
        job_minutes=int(older_than_days * 1440),
        env_minutes=None if env_unused_days is None else int(env_unused_days * 1440),
        keep=keep,
        dry_run=dry_run,
        sif_dir=f"{store.root}/{IMAGE_CACHE_DIR}/sif",
        image_minutes=None if images_unused_days is None else int(images_unused_days * 1440),
    )
    result = session.transport.run(["sh", "-c", script], check=True, timeout=3600)
    if result.stderr.strip():
        logger.warning("prune on %s: %s", session.transport.description, result.stderr.strip())
    parse_output(result.stdout, report)
    if cache_max_bytes is not None and cache_dir().is_dir():
        trim_cache(cache_dir(), cache_max_bytes, dry_run=dry_run, report=report)
    return report
