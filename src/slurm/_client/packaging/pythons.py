"""The Python a ``python_version=`` asks for: found on the cluster, or installed there by uv.

``packaging={"python_version": "3.12"}`` is resolved on the cluster (the login
host over SSH, this machine locally) once per session, by one shell command
(and a second, uv's, when the first finds no match), before the preflight and
before anything is submitted. The first of these wins:

1. ``python3.12`` on the ``PATH`` of a non-interactive shell, if it runs and is
   3.12 (a pyenv shim that fails, or a ``python3.12`` that is another version,
   does not count);
2. ``uv python find --system 3.12``: the interpreters uv knows (the ``PATH``, and
   those it installed before in the install directory);
3. ``uv python install 3.12`` into the install directory, where the cluster's
   uv may fetch: the Internet, or the mirror uv is pointed at.

The install directory is ``{env_dir}/.python`` (under the job base directory by
default), on the filesystem the compute nodes share, never a node-local
``/tmp``; ``UV_PYTHON_INSTALL_DIR`` in the packaging's ``env`` replaces it (one
set in the cluster's login environment does not: the nodes may not see it). It
is created 0700 and checked to be the user's own (:mod:`slurm._transport.trust`)
in the same command, before anything in it runs. Nothing lands in
``~/.local/bin`` (``--no-bin``).

uv is configured as its user configures it: the packaging's ``env``
(``UV_PYTHON_INSTALL_MIRROR``, ``UV_PYTHON_DOWNLOADS_JSON_URL``, ...), the
cluster's login environment, and uv's own ``uv.toml`` files there. When nothing
matches and nothing can be installed (no uv, or its install failed), the
:class:`~slurm.errors.ConfigurationError` says what was tried, quotes uv, and
says what to do. The interpreter picked, and how, is logged.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass

from slurm._client.preflight import FIND_UV
from slurm._transport import trust
from slurm._transport.base import Transport
from slurm.errors import CommandError, ConfigurationError

__all__ = ["HOW", "FoundPython", "find_python", "parse_output", "path_script", "uv_script"]

logger = logging.getLogger(__name__)

#: How it was picked, by ``FoundPython.how``.
HOW = {
    "path": "found on the PATH",
    "find": "found by `uv python find`",
    "install": "installed by `uv python install`",
}
_INSTALL_TIMEOUT = 1800.0
#: Prints ``VERSION|EXECUTABLE`` under any Python.
_PROBE = "import sys; print('%d.%d.%d|%s' % (tuple(sys.version_info[:3]) + (sys.executable,)))"


@dataclass(frozen=True)
class FoundPython:
    """The interpreter a ``python_version`` resolved to.

    Attributes:
        executable: Its absolute path on the cluster (``sys.executable`` there).
        version: Its full version (``3.12.1``).
        how: ``"path"``, ``"find"`` or ``"install"`` (see :data:`HOW`).
    """

    executable: str
    version: str
    how: str


def path_script(version: str, install_dir: str) -> str:
    """The first command: the install directory's trust lines
    (:func:`slurm._transport.trust.build_script`, which creates it 0700), then
    ``py|path|VERSION|EXE`` (``python3.X`` ran), ``py|path-fail|CMD|ERROR`` or
    ``py|path-missing|CMD|``, then ``uv|ok|PATH`` or ``uv|missing|``. Every value is quoted.
    """
    q = shlex.quote
    lines = [
        "set -u",
        f"want={q(version)}; probe={q(_PROBE)}",
        "cd / || exit 1",
        trust.build_script([install_dir]).rstrip("\n"),
        _MATCHES,
        f"cmd={q('python' + _minor(version))}",
        'if c=$(command -v "$cmd" 2>/dev/null); then',
        '  if out=$("$c" -c "$probe" 2>&1); then',
        '    echo "py|path|$out"; if matches "$out"; then exit 0; fi',
        '  else echo "py|path-fail|$c|$(printf %s "$out" | sed -n "1p;\\$p" | tr "\\n" " ")"; fi',
        'else echo "py|path-missing|$cmd|"; fi',
        FIND_UV.rstrip("\n"),
        'if [ -n "$uv" ]; then echo "uv|ok|$uv"; else echo "uv|missing|"; fi',
    ]
    return "\n".join(lines) + "\n"


def uv_script(version: str, install_dir: str, uv: str) -> str:
    """The second command, once the install directory was found to be the user's own:
    ``py|find|VERSION|EXE`` or ``py|install|VERSION|EXE``, or ``fail|install|EXIT``
    followed by everything uv said. Every value is quoted.
    """
    q = shlex.quote
    lines = [
        "set -u",
        f"want={q(version)}; probe={q(_PROBE)}; uv={q(uv)}",
        # From "/": no pyproject.toml or uv.toml of a working directory configures uv.
        "cd / || exit 1",
        _MATCHES,
        f"export UV_PYTHON_INSTALL_DIR={q(install_dir)}",
        'if p=$("$uv" python find --system "$want" 2>/dev/null) '
        '&& out=$("$p" -c "$probe" 2>/dev/null) && matches "$out"; then',
        '  echo "py|find|$out"; exit 0',
        "fi",
        # uv before 0.8 knows no --no-bin (and puts nothing in ~/.local/bin).
        'nobin=""; "$uv" python install --help 2>/dev/null | grep -q -- --no-bin && nobin=--no-bin',
        'log=$("$uv" python install $nobin "$want" 2>&1); rc=$?',
        'if [ "$rc" = 0 ] && p=$("$uv" python find --system "$want" 2>&1) '
        '&& out=$("$p" -c "$probe" 2>&1) && matches "$out"; then',
        '  echo "py|install|$out"; exit 0',
        "fi",
        'echo "fail|install|$rc"',
        'printf "%s\\n" "$log"',
        '[ "$rc" = 0 ] && printf "uv python find after the install said: %s\\n" "$p"',
    ]
    return "\n".join(lines) + "\n"


_MATCHES = 'matches() { case "${1%%|*}" in "$want" | "$want".*) return 0 ;; esac; return 1; }'


def parse_output(stdout: str, version: str, install_dir: str, where: str) -> FoundPython:
    """The interpreter the script found, or the error that says what was tried.

    Raises:
        ConfigurationError: ``install_dir`` is not the user's own, or no Python
            ``version`` was found and none could be installed.
    """
    _check_trust(stdout, version, install_dir, where)
    found = _found(stdout, version)
    if found is not None:
        return found
    head, marker, uv_said = stdout.partition("\nfail|install|")
    tried: list[str] = []
    for line in head.splitlines():
        kind, _, rest = line.partition("|")
        what, _, detail = rest.partition("|")
        if kind == "py" and what == "path":
            found_version, _, executable = detail.partition("|")
            tried.append(f"python{_minor(version)} on the PATH is {found_version} ({executable})")
        elif kind == "py" and what == "path-fail":
            command, _, error = detail.partition("|")
            tried.append(f"{command} on the PATH does not run: {error.strip() or 'no output'}")
        elif kind == "py" and what == "path-missing":
            tried.append(f"{detail.rstrip('|')} is not on the PATH of a non-interactive shell")
    uv = _uv(stdout)
    if not marker and not uv:
        tried.append("uv is not there to find or install one")
    what_to_do = (
        f"install Python {version} there and pass packaging={{'python': "
        f"'/path/to/python{_minor(version)}'}}, or install uv there (`pip install --user uv`) "
        "so that the SDK installs it"
    )
    if marker:
        code, _, said = uv_said.partition("\n")
        words = "\n".join("    " + line for line in said.strip()[-3000:].splitlines())
        tried.append(
            f"`{uv} python install {version}` (into {install_dir}) failed (exit "
            f"{code.strip()}); uv said:\n{words or '    (nothing)'}"
        )
        what_to_do = (
            "if the cluster cannot reach the Internet, point its uv at a mirror of "
            "python-build-standalone: packaging={'env': {'UV_PYTHON_INSTALL_MIRROR': "
            "'file:///shared/mirror'}} (with UV_PYTHON_DOWNLOADS_JSON_URL for builds of your "
            f"own), or install Python {version} there and pass packaging={{'python': "
            f"'/path/to/python{_minor(version)}'}}"
        )
    lines = [
        f"packaging python_version={version!r}: no Python {version} on {where}, and none "
        "could be installed; nothing was submitted. Tried:",
        *(f"- {line}" for line in tried),
        f"What to do: {what_to_do}.",
    ]
    raise ConfigurationError("\n".join(lines))


def find_python(
    transport: Transport, version: str, install_dir: str, env: dict[str, str] | None = None
) -> FoundPython:
    """Find or install Python ``version`` on ``transport`` (see the module docstring):
    one command, and a second one (uv's) when no ``python3.X`` on the PATH is it.

    Args:
        transport: The cluster.
        version: ``"3.12"`` or ``"3.12.4"``.
        install_dir: Where uv installs it (absolute, on a filesystem the nodes share).
        env: More environment for the commands (the packaging's ``env``).

    Raises:
        ConfigurationError: As :func:`parse_output`, or a command did not finish.
    """
    where = transport.description
    stdout = _run(transport, path_script(version, install_dir), version, env)
    _check_trust(stdout, version, install_dir, where)  # before anything in it runs
    uv = _uv(stdout)
    if _found(stdout, version) is None and uv:
        stdout += _run(transport, uv_script(version, install_dir, uv), version, env)
    found = parse_output(stdout, version, install_dir, where)
    logger.info(
        "python_version=%s is %s (Python %s) on %s, %s",
        version,
        found.executable,
        found.version,
        where,
        HOW[found.how],
    )
    return found


def _run(transport: Transport, script: str, version: str, env: dict[str, str] | None) -> str:
    try:
        result = transport.run(
            ["sh", "-c", script], check=False, env=env or None, timeout=_INSTALL_TIMEOUT
        )
    except CommandError as exc:
        raise ConfigurationError(
            f"packaging python_version={version!r}: finding or installing Python {version} on "
            f"{transport.description} did not finish: {exc}. Nothing was submitted."
        ) from exc
    return result.stdout


def _check_trust(stdout: str, version: str, install_dir: str, where: str) -> None:
    problems = trust.parse_output(stdout, [install_dir])
    if problems:
        problem = problems[0]
        raise ConfigurationError(
            f"packaging python_version={version!r}: the directory Python is installed in "
            f"({install_dir} on {where}) cannot be trusted: {problem.detail}. {problem.fix}."
            " Nothing was submitted."
        )


def _found(stdout: str, version: str) -> FoundPython | None:
    """The first ``py|HOW|VERSION|EXE`` line that is ``version``, if any."""
    for line in stdout.splitlines():
        kind, what, found, executable = [*line.split("|", 3), "", "", ""][:4]
        if kind == "py" and what in HOW and _matches(found, version):
            return FoundPython(executable.strip(), found, what)
    return None


def _uv(stdout: str) -> str:
    """The cluster's uv, as the first command found it (``""``: none)."""
    for line in stdout.splitlines():
        if line.startswith("uv|ok|"):
            return line[len("uv|ok|") :].strip()
    return ""


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _matches(found: str, version: str) -> bool:
    return found == version or found.startswith(version + ".")
