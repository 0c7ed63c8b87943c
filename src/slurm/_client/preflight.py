"""Preflight: is this cluster usable at all? Checked once, reported all at once.

On the first submission through a :class:`~slurm._api.cluster.Cluster` one shell
script runs on the cluster (one round trip over SSH) and prints one
machine-readable line per check:

- ``sbatch``, ``squeue`` and ``scontrol`` are on the ``PATH`` of a
  non-interactive shell;
- the job base directory can be created and written;
- the directories the SDK trusts (the job base directory, its index, the
  environments directory and the wheel store) are the user's own and others
  cannot write them or their parents (see :mod:`slurm._transport.trust`);
- the Python that will run jobs (or build their environment) starts, and
  which version, platform and C library it has (and, when asked, whether it
  can import ``slurm.runner`` or create virtual environments);
- whether ``uv`` is there (used to create environments when it is);
- which container runtimes the cluster has (``container_runtime=``): pyxis (``srun``
  knows ``--container-image``) and Apptainer (``apptainer --version`` on the login
  host); informational, never a failure (a task asking for one it lacks is refused
  by :func:`slurm._client.packaging.images.resolve_runtime`);
- whether the compute nodes see the job base directory (and the environments
  directory) and can start the interpreter: one ``srun`` step from the same
  script, skipped once the nodes were seen to, and for a new base directory
  beside one they saw (:mod:`slurm._slurm.probe`).

On this machine (the local transport) the same lines are found in this process
where no program is needed (:func:`_answer_here`): the commands on the ``PATH``, the
directories, this very interpreter, the nodes' view once remembered. Only the rest
starts a process, so a known cluster costs one ``srun --help`` instead of a shell,
an interpreter and a dozen subshells.

:func:`run_preflight` returns a :class:`PreflightReport`;
:meth:`PreflightReport.raise_for_problems` turns every failed check into one
:class:`~slurm.errors.ConfigurationError` that says what to do for each.
``cluster.diagnose()`` returns :meth:`PreflightReport.to_dict`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from slurm._slurm import probe
from slurm._slurm.packaging import OLDEST_PYTHON
from slurm._transport import trust
from slurm._transport.base import Transport
from slurm._wire.record import field, record
from slurm.errors import CommandError, ConfigurationError

__all__ = [
    "FIND_UV",
    "REQUIRED_COMMANDS",
    "Finding",
    "NodeCheck",
    "PreflightReport",
    "PythonInfo",
    "build_script",
    "parse_output",
    "run_preflight",
    "version_mismatch",
]

REQUIRED_COMMANDS = ("sbatch", "squeue", "scontrol")

#: Shell that sets ``$uv`` to the cluster's ``uv`` (on the ``PATH`` or where its installers
#: put it), empty when there is none.
FIND_UV = (
    'uv=""; for c in "$(command -v uv 2>/dev/null)" "$HOME/.local/bin/uv" '
    '"$HOME/.cargo/bin/uv"; do\n'
    '  if [ -n "$c" ] && [ -x "$c" ]; then uv=$c; break; fi\n'
    "done\n"
)

# Runs under any Python (2.7 too), so that even a wrong interpreter reports its version.
_PROBE = (
    "import sys, sysconfig, platform\n"
    "v = sys.version_info\n"
    "libc = platform.libc_ver()\n"
    "extra = ''\n"
    "for arg in sys.argv[1:]:\n"
    "    try:\n"
    "        __import__(arg)\n"
    "        extra += ' ' + arg + '=ok'\n"
    "    except Exception as e:\n"
    "        extra += ' ' + arg + '=' + type(e).__name__\n"
    "print('%d.%d.%d|%s|%s|%s|%s|%s|%s' % (v[0], v[1], v[2], sysconfig.get_platform(),\n"
    "    platform.python_implementation(), libc[0] or '-', libc[1] or '-',\n"
    "    sys.executable, extra.strip() or '-'))\n"
)


@record(frozen=True)
class Finding:
    """One check: its name, whether it passed, what was seen, and what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@record(frozen=True)
class PythonInfo:
    """What the cluster's interpreter said about itself."""

    interpreter: str
    version: str
    platform: str
    implementation: str
    libc: str
    libc_version: str
    executable: str
    modules: dict[str, str] = field(default_factory=dict)

    @property
    def minor(self) -> tuple[int, int]:
        """``(major, minor)`` of the version."""
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)


@record(frozen=True)
class NodeCheck:
    """What to ask a compute node (see :mod:`slurm._slurm.probe`).

    Attributes:
        srun: The probe's ``srun`` argv (:func:`slurm._slurm.probe.srun_argv`).
        dirs: The directories the nodes must see, by setting name (the job base
            directory first).
        python: The interpreter the nodes must start (``""``: none).
        modules: What it must import there.
    """

    srun: tuple[str, ...]
    dirs: Mapping[str, str]
    python: str = ""
    modules: tuple[str, ...] = ()


@record
class PreflightReport:
    """Everything the preflight script found on the cluster."""

    where: str
    findings: list[Finding]
    python: PythonInfo | None = None
    uv: str | None = None
    #: The container runtimes found, name -> what says so (``{"apptainer": "1.4.5"}``).
    runtimes: dict[str, str] = field(default_factory=dict)
    nodes: probe.NodeView | None = None

    @property
    def problems(self) -> list[Finding]:
        """The checks that failed."""
        return [f for f in self.findings if not f.ok]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-friendly) of the findings, as ``cluster.diagnose()`` returns it."""
        checks = {f.name: {"ok": f.ok, "detail": f.detail, "fix": f.fix} for f in self.findings}
        python: dict[str, Any] | None = None
        if self.python is not None:
            python = {
                "interpreter": self.python.interpreter,
                "version": self.python.version,
                "platform": self.python.platform,
                "implementation": self.python.implementation,
                "libc": f"{self.python.libc} {self.python.libc_version}".strip(),
                "executable": self.python.executable,
                "modules": dict(self.python.modules),
            }
        return {
            "where": self.where,
            "ok": self.ok,
            "checks": checks,
            "python": python,
            "uv": self.uv,
            "runtimes": dict(self.runtimes),
            "problems": [f"{f.name}: {f.detail}. {f.fix}".strip() for f in self.problems],
        }

    def add(self, finding: Finding) -> None:
        """Add a finding made on the client (e.g. a version mismatch)."""
        self.findings.append(finding)

    def raise_for_problems(self) -> None:
        """Raise one :class:`ConfigurationError` listing every failed check with its fix.

        Raises:
            ConfigurationError: At least one check failed. Nothing was submitted.
        """
        problems = self.problems
        if not problems:
            return
        lines = [
            f"The cluster ({self.where}) is not ready for slurm-sdk; nothing was submitted. "
            f"{len(problems)} problem(s):"
        ]
        for f in problems:
            lines.append(f"- {f.name}: {f.detail}")
            if f.fix:
                lines.append(f"  what to do: {f.fix}")
        raise ConfigurationError("\n".join(lines))


def build_script(
    base_dir: str,
    python: str,
    *,
    modules: tuple[str, ...] = (),
    commands: tuple[str, ...] = REQUIRED_COMMANDS,
    trusted: Mapping[str, str] | None = None,
    nodes: NodeCheck | None = None,
) -> str:
    """The POSIX shell script that runs every check; each value is quoted.

    Output lines are ``KIND|NAME|STATUS|DETAIL`` (``DETAIL`` may contain ``|``).
    ``modules`` are imported by ``python`` to check they are there; ``trusted``
    (name -> directory) are created 0700 and checked by :mod:`slurm._transport.trust`;
    ``nodes`` asks a compute node what it sees once those exist.
    """
    q = shlex.quote
    node_lines: list[str] = []
    if nodes is not None:
        node_lines = ['if [ -d "$b" ]; then', _node_lines(base_dir, nodes), "fi"]
    lines = [
        "for c in " + " ".join(q(c) for c in commands) + "; do",
        '  if p=$(command -v "$c" 2>/dev/null); then echo "cmd|$c|ok|$p";',
        '  else echo "cmd|$c|missing|"; fi',
        "done",
        f"b={q(base_dir)}",
        'if err=$(exec 2>&1; umask 077; mkdir -p -- "$b" && t="$b/.preflight.$$" '
        '&& : > "$t" && rm -f -- "$t"); then echo "dir|base|ok|$b";',
        'else echo "dir|base|fail|$(printf %s "$err" | tr "\\n" " ")"; fi',
        _python_lines(python, modules),
        trust.build_script(list((trusted or {}).values())),
        _APPTAINER,
        "if srun --help 2>/dev/null | grep -q -- --container-image; then",
        '  echo "runtime|pyxis|ok|srun --container-image"; else echo "runtime|pyxis|missing|"; fi',
        *node_lines,
        FIND_UV.rstrip("\n"),
        'if [ -n "$uv" ]; then echo "tool|uv|ok|$uv"; else echo "tool|uv|missing|"; fi',
    ]
    return "\n".join(lines) + "\n"


_APPTAINER = (
    'if a=$(apptainer --version 2>/dev/null); then echo "runtime|apptainer|ok|$a";\n'
    'else echo "runtime|apptainer|missing|"; fi'
)


def _python_lines(python: str, modules: tuple[str, ...]) -> str:
    """The shell that runs :data:`_PROBE` with ``python`` and prints its ``python|run`` line."""
    q = shlex.quote
    return "\n".join(
        [
            f"py={q(python)}",
            # From "/": `python -c` puts its working directory first on sys.path (a planted
            # platform.py there would run); a relative interpreter path keeps meaning the same.
            'case $py in /*) ;; */*) py="$PWD/$py" ;; esac',
            f'if out=$(cd / && "$py" -c {q(_PROBE)} {" ".join(q(m) for m in modules)} 2>&1); then',
            '  echo "python|run|ok|$out";',
            'else echo "python|run|fail|$(printf %s "$out" | tail -n 3 | tr "\\n" " ")"; fi',
        ]
    )


def _node_lines(base_dir: str, nodes: NodeCheck) -> str:
    dirs = list(nodes.dirs.values())
    ask = probe.build_script(
        base_dir, dirs, nodes.python, modules=nodes.modules, srun=nodes.srun, remember=True
    )
    return ask.rstrip("\n")


def _answer_here(
    transport: Transport,
    base_dir: str,
    python: str,
    modules: tuple[str, ...],
    commands: tuple[str, ...],
    trusted: Mapping[str, str],
    nodes: NodeCheck | None,
    env: dict[str, str] | None,
) -> tuple[str, str]:
    """What :func:`build_script`'s script prints, found in this process (the local transport),
    and the script of what is left (``""``: nothing).

    ``os`` calls answer what needs no program: the commands on ``PATH``, the base
    directory, the trusted directories (:func:`slurm._transport.trust.local_report`),
    ``uv``, this very interpreter (no modules to import) and the nodes' view once
    :data:`slurm._slurm.probe.SEEN_FILE` holds it. One ``sh`` runs the rest, when there
    is a rest: another interpreter, ``apptainer --version``, a node probe. The
    ``srun --help`` that tells pyxis runs alone, and only when there is an ``srun``.
    """
    path = (env or {}).get("PATH", os.environ.get("PATH", os.defpath))
    lines: list[str] = []
    for command in commands:
        found = shutil.which(command, path=path)
        lines.append(f"cmd|{command}|ok|{found}" if found else f"cmd|{command}|missing|")
    try:
        transport.mkdir(base_dir)
        test = os.path.join(base_dir, f".preflight.{os.getpid()}")
        os.close(os.open(test, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(test)
    except OSError as exc:
        base_ok = False
        lines.append(f"dir|base|fail|{exc}")
    else:
        base_ok = True
        lines.append(f"dir|base|ok|{base_dir}")
    shell: list[str] = []
    if python == sys.executable and not modules:
        lines.append(f"python|run|ok|{_this_python()}")
    else:
        shell.append(_python_lines(python, modules))
    for directory in trusted.values():
        with contextlib.suppress(OSError):  # the report says what is wrong with it
            transport.mkdir(directory)
    lines.append(trust.local_report(list(trusted.values())).rstrip("\n"))
    if shutil.which("apptainer", path=path):
        shell.append(_APPTAINER)
    else:
        lines.append("runtime|apptainer|missing|")
    if shutil.which("srun", path=path) and _knows_containers(transport, env):
        lines.append("runtime|pyxis|ok|srun --container-image")
    else:
        lines.append("runtime|pyxis|missing|")
    if nodes is not None and base_ok:
        if _seen_before(base_dir, nodes):
            lines.append(f"node|cached|ok|{base_dir}/{probe.SEEN_FILE}|")
        else:
            shell += [f"b={shlex.quote(base_dir)}", _node_lines(base_dir, nodes)]
    home = os.path.expanduser("~")
    for uv in (shutil.which("uv", path=path), f"{home}/.local/bin/uv", f"{home}/.cargo/bin/uv"):
        if uv and os.path.isfile(uv) and os.access(uv, os.X_OK):
            lines.append(f"tool|uv|ok|{uv}")
            break
    else:
        lines.append("tool|uv|missing|")
    return "\n".join(lines) + "\n", "\n".join(shell)


def _knows_containers(transport: Transport, env: dict[str, str] | None) -> bool:
    """Whether ``srun --help`` lists pyxis's ``--container-image``."""
    try:
        helps = transport.run(["srun", "--help"], check=False, env=env, timeout=60)
    except CommandError:
        return False
    return "--container-image" in helps.stdout


def _this_python() -> str:
    """What :data:`_PROBE` prints when this interpreter runs it."""
    import platform
    import sysconfig

    v = sys.version_info
    libc, libc_version = platform.libc_ver()
    return (
        f"{v[0]}.{v[1]}.{v[2]}|{sysconfig.get_platform()}|{platform.python_implementation()}|"
        f"{libc or '-'}|{libc_version or '-'}|{sys.executable}|-"
    )


def _seen_before(base_dir: str, nodes: NodeCheck) -> bool:
    """Whether the base directory's :data:`~slurm._slurm.probe.SEEN_FILE` names all that
    ``nodes`` asks (what the probe script's ``grep -qxF`` finds)."""
    try:
        with open(os.path.join(base_dir, probe.SEEN_FILE), encoding="utf-8") as f:
            seen = set(f.read().splitlines())
    except (OSError, UnicodeDecodeError):
        return False
    wanted = [f"dir|{d}" for d in nodes.dirs.values()]
    return seen.issuperset(wanted + ([f"python|{nodes.python}"] if nodes.python else []))


def parse_output(
    stdout: str,
    *,
    where: str,
    base_dir: str,
    python: str,
    modules: tuple[str, ...] = (),
    commands: tuple[str, ...] = REQUIRED_COMMANDS,
    trusted: Mapping[str, str] | None = None,
    nodes: NodeCheck | None = None,
) -> PreflightReport:
    """Turn the script's output into a report; a check with no line counts as failed."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for line in stdout.splitlines():
        parts = line.split("|", 3)
        if len(parts) == 4:
            seen[(parts[0], parts[1])] = (parts[2], parts[3].strip())
    report = PreflightReport(where=where, findings=[])
    for command in commands:
        status, detail = seen.get(("cmd", command), ("missing", ""))
        if status == "ok":
            report.add(Finding(command, True, detail))
        else:
            report.add(
                Finding(
                    command,
                    False,
                    f"`{command}` is not on the PATH of a non-interactive shell on {where}",
                    "install the Slurm client there, or make it visible to non-interactive "
                    "shells (e.g. `module load slurm` or a PATH line near the top of "
                    "~/.bashrc, before any `return` for non-interactive shells)",
                )
            )
    status, detail = seen.get(("dir", "base"), ("fail", "the check did not run"))
    if status == "ok":
        report.add(Finding("job_base_dir", True, detail))
    else:
        report.add(
            Finding(
                "job_base_dir",
                False,
                f"cannot create or write {base_dir!r} on {where}: {detail}",
                "pass job_base_dir= (or --job-base-dir) a directory you can write, on a "
                "filesystem the compute nodes share",
            )
        )
    names = list((trusted or {}).items())
    problems = {p.path: p for p in trust.parse_output(stdout, [path for _, path in names])}
    for name, path in names:
        problem = problems.get(path)
        if problem is None:
            report.add(Finding(f"{name}_owner", True, f"{path} is yours, others cannot write it"))
        else:
            report.add(Finding(f"{name}_owner", False, problem.detail, problem.fix))
    status, detail = seen.get(("tool", "uv"), ("missing", ""))
    report.uv = detail if status == "ok" and detail else None
    for runtime in ("pyxis", "apptainer"):  # the order container_runtime='auto' tries them
        status, detail = seen.get(("runtime", runtime), ("missing", ""))
        if status == "ok":
            words = detail.split()
            report.runtimes[runtime] = words[-1] if runtime == "apptainer" and words else detail
    status, detail = seen.get(("python", "run"), ("fail", "the check did not run"))
    info = _parse_python(python, detail) if status == "ok" else None
    if info is None:
        report.add(
            Finding(
                "python",
                False,
                f"{python!r} does not run on {where}: {detail or 'no output'}",
                "pass Cluster(python='/path/to/python3') with an interpreter that exists "
                "there (or packaging={'python': ...} for the one that builds the environment)",
            )
        )
    else:
        report.python = info
        report.add(Finding("python", True, f"{info.executable} {info.version}"))
        for module in modules:
            result = info.modules.get(module, "missing")
            # uv creates environments without the interpreter's venv/ensurepip.
            if result != "ok" and not (module == "ensurepip" and report.uv):
                report.add(_module_finding(module, result, python, where))
    if nodes is not None and seen.get(("dir", "base"), ("fail", ""))[0] == "ok":
        _add_node_findings(report, nodes, stdout, where)
    return report


def _add_node_findings(report: PreflightReport, nodes: NodeCheck, stdout: str, where: str) -> None:
    view = report.nodes = probe.parse_output(stdout, list(nodes.dirs.values()), nodes.python)
    if not view.checked:
        report.add(
            Finding(
                "nodes",
                True,
                f"not checked whether the compute nodes see the "
                f"job directories and the interpreter ({view.why})",
            )
        )
        return
    seen_by = f"a compute node ({view.node})" if view.node else "the compute nodes"
    if view.cached:
        before = f"{probe.SEEN_FILE}, or beside a directory in {probe.REGISTRY}"
        report.add(Finding("nodes", True, f"seen by the compute nodes before ({before})"))
    for name, path in nodes.dirs.items():
        if path in view.missing:
            report.add(
                Finding(
                    f"{name}_on_nodes",
                    False,
                    f"{seen_by} cannot see {name} {path!r}, which exists on {where}: it is "
                    "on a filesystem the nodes do not share (a node-local path such as /tmp: "
                    "each node has its own), so every job would fail there",
                    f"pass {name}= a directory on a filesystem the login host and the compute "
                    "nodes share (your home directory or a shared scratch filesystem)",
                )
            )
    if nodes.python and view.python_error is not None:
        report.add(
            Finding(
                "python_on_nodes",
                False,
                f"{nodes.python!r} runs on {where} but not on {seen_by}: {view.python_error}",
                "use an interpreter (or a virtual environment) on a filesystem the compute "
                "nodes share: Cluster(python='/shared/path/bin/python3'), or "
                "packaging={'python': ...} to build the jobs' environment from it",
            )
        )
    if not view.missing and view.python_error is None and not view.cached:
        seen = f"{seen_by} sees the job directories and the interpreter"
        report.add(Finding("nodes", True, seen))


def _parse_python(interpreter: str, detail: str) -> PythonInfo | None:
    fields = detail.strip().splitlines()[-1].split("|") if detail.strip() else []
    if len(fields) != 7 or not fields[0][:1].isdigit():
        return None
    modules: dict[str, str] = {}
    if fields[6] != "-":
        for item in fields[6].split():
            name, _, result = item.partition("=")
            modules[name] = result
    return PythonInfo(
        interpreter=interpreter,
        version=fields[0],
        platform=fields[1],
        implementation=fields[2],
        libc="" if fields[3] == "-" else fields[3],
        libc_version="" if fields[4] == "-" else fields[4],
        executable=fields[5],
        modules=modules,
    )


def _module_finding(module: str, result: str, python: str, where: str) -> Finding:
    if module == "slurm.runner":
        return Finding(
            "python_sdk",
            False,
            f"{python!r} on {where} cannot import slurm.runner ({result}): slurm-sdk is "
            "not installed for it",
            "install slurm-sdk into that interpreter's environment, or leave python= unset "
            "so the SDK ships your code and itself in an environment it builds there",
        )
    if module == "ensurepip":
        return Finding(
            "python_venv",
            False,
            f"{python!r} on {where} cannot create virtual environments (no {module}: "
            f"{result}) and uv is not installed there",
            "install the venv module (Debian/Ubuntu: `apt install python3-venv`) or uv "
            "(`pip install --user uv`) on the cluster, or point packaging={'python': ...} "
            "at an interpreter that has it",
        )
    return Finding(
        f"python_{module}",
        False,
        f"{python!r} on {where} cannot import {module} ({result})",
        f"install {module} for that interpreter",
    )


def version_mismatch(info: PythonInfo, where: str) -> Finding | None:
    """A finding when the cluster's Python is older than the SDK supports.

    Another minor version of 3.11 or later is fine for calls that travel by
    reference (functions in modules, plain data and exceptions cross with plain
    pickle); a call that travels by value (a function from ``__main__``, a
    notebook, a lambda) is refused at submission (see
    :func:`slurm._client.submission.check_by_value`).
    """
    if info.minor >= OLDEST_PYTHON:
        return None
    oldest = ".".join(map(str, OLDEST_PYTHON))
    return Finding(
        "python_version",
        False,
        f"the cluster's Python ({info.interpreter} on {where}) is {info.version}, older "
        f"than the {oldest} slurm-sdk needs on the cluster",
        f"point the SDK at a Python {oldest} or later there: Cluster(python='/path/to/python3') "
        "to use it as it is (with slurm-sdk installed), or packaging={'python': "
        "'/path/to/python3'} to build the environment from it",
    )


def run_preflight(
    transport: Transport,
    base_dir: str,
    python: str,
    *,
    modules: tuple[str, ...] = (),
    commands: tuple[str, ...] = REQUIRED_COMMANDS,
    check_version: bool = True,
    env: dict[str, str] | None = None,
    trusted: Mapping[str, str] | None = None,
    nodes: NodeCheck | None = None,
) -> PreflightReport:
    """Run every check in one command on ``transport`` and return the report.

    Args:
        transport: Where the cluster's commands run.
        base_dir: The job base directory (absolute).
        python: The interpreter to check.
        modules: Modules that ``python`` must import (e.g. ``slurm.runner``).
        commands: The Slurm commands that must exist.
        check_version: Add a finding when ``python`` is older than the SDK supports.
        env: Extra environment for the script (tests use it to change ``PATH``).
        trusted: Directories (name -> absolute path) that must be the user's own.
        nodes: What a compute node must see (``None``: no node is asked).

    Raises:
        TransportError: The cluster cannot be reached at all.
    """
    where = transport.description
    failure: Finding | None = None
    here = ""
    if transport.kind == "local" and set(env or {}) <= {"PATH"}:
        here, script = _answer_here(
            transport, base_dir, python, modules, commands, trusted or {}, nodes, env
        )
    else:
        script = build_script(
            base_dir, python, modules=modules, commands=commands, trusted=trusted, nodes=nodes
        )
    stdout = here
    if script:
        try:
            ran = transport.run(["sh", "-c", script], check=False, env=env, timeout=120)
            stdout += ran.stdout
        except CommandError as exc:  # no `sh`, or it hung
            stdout += exc.stdout
            failure = Finding(
                "shell", False, f"the check script could not run: {exc}", "check that `sh` works"
            )
    report = parse_output(
        stdout,
        where=where,
        base_dir=base_dir,
        python=python,
        modules=modules,
        commands=commands,
        trusted=trusted,
        nodes=nodes,
    )
    if failure is not None:
        report.add(failure)
    if check_version and report.python is not None:
        mismatch = version_mismatch(report.python, where)
        if mismatch is not None:
            report.add(mismatch)
    return report
