"""``slurm doctor`` / ``cluster.diagnose()``: can this cluster run the SDK's jobs, and if not, why.

Checks, in order (a failed connection or login skips the rest):

- **connectivity**: the login node answers (SSH) or commands run here (local);
- **authentication**: the SSH login is accepted (keys, second factor);
- **slurm_commands**: ``sbatch``, ``squeue``, ``scontrol``, ``sinfo``, ``sacct``;
- **controller**: ``scontrol ping`` reaches slurmctld;
- **accounting**: ``sacct`` answers (slurmdbd reachable);
- **partitions**: each partition with its state and limits; the default one exists;
- **python** and **shipping**: the interpreter that runs jobs (or builds their
  environment) and how the code reaches the cluster (the preflight's findings);
- **base_dir**: the job base directory is writable, owned by the login user,
  not writable by others; **free_space** there;
- **clock**: the skew between this machine's clock and the cluster's.

Everything on the cluster runs in two commands: the preflight script
(:mod:`slurm._client.preflight`) and one script of this module whose sections are
parsed by pure functions. :func:`render_text` prints one line a check, with
the fix for each failure; :meth:`DoctorReport.to_dict` is the ``--json`` form.
A check is *blocking* when submission cannot work until it is fixed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slurm._client.doctor.checks import (
    CHECK_NAMES,
    EXTRA_COMMANDS,
    FAIL,
    OK,
    SKIP,
    WARN,
    Check,
    DoctorReport,
    Partition,
    build_script,
    containers_check,
    disk_check,
    owner_check,
    parse_partitions,
    parse_sections,
    partitions_check,
    render_text,
    skew_check,
)
from slurm.errors import (
    AuthenticationError,
    CommandError,
    ConfigurationError,
    HostKeyError,
    TransportError,
)

if TYPE_CHECKING:
    from slurm._client.session import Session

_Add = Callable[[Check], None]

__all__ = ["CHECK_NAMES", "Check", "DoctorReport", "Partition", "diagnose", "render_text"]


# --- running the checks ----------------------------------------------------------------


def diagnose(session: Session) -> DoctorReport:
    """Run every check on ``cluster``; never raises for a finding (they are in the report)."""
    try:
        transport = session.transport
    except ConfigurationError as exc:  # e.g. an unreadable ~/.ssh/config
        report = DoctorReport(str(session.hostname), session.backend_type, [])
        report.checks.append(
            Check("connectivity", FAIL, str(exc), "fix the SSH settings", blocking=True)
        )
        return _skip_rest(report, "needs valid SSH settings")
    report = DoctorReport(transport.description, session.backend_type, [])
    add = report.checks.append
    if not _connect(session, add):
        return _skip_rest(report, "needs a working login")
    from slurm._client.packaging import diagnose as preflight

    try:
        report.preflight = pre = preflight(session)
        sent = time.time()
        stdout = transport.run(
            ["sh", "-c", build_script(session.base_dir)], check=False, timeout=120
        ).stdout
        received = time.time()
    except (TransportError, CommandError) as exc:
        add(
            Check(
                "slurm_commands",
                FAIL,
                f"the checks could not run on {report.where}: {exc}",
                "run `slurm doctor` again; check the connection",
                blocking=True,
            )
        )
        return _skip_rest(report, "the checks could not run")
    sections = parse_sections(stdout)
    _commands(pre, sections, add)
    _controller(sections, add)
    _accounting(sections, add)
    if "partitions" in sections and sections["partitions"][0] == 0:
        report.partitions = parse_partitions(sections["partitions"][1])
        add(partitions_check(report.partitions, session.default_partition, report.where))
    else:
        add(
            Check(
                "partitions",
                FAIL,
                "cannot list partitions: "
                + sections.get("partitions", (-1, "no output"))[1].strip(),
                "check `scontrol show partition` works there",
                blocking=True,
            )
        )
    _python(pre, add)
    base = pre["checks"]["job_base_dir"]
    trusted = [
        c
        for name, c in pre["checks"].items()
        if name.endswith(("_owner", "dir_on_nodes")) and not c["ok"]
    ]
    if not base["ok"]:
        add(Check("base_dir", FAIL, base["detail"], base["fix"], blocking=True))
    elif trusted:  # someone else owns or may write a directory jobs load from
        add(Check("base_dir", FAIL, trusted[0]["detail"], trusted[0]["fix"], blocking=True))
    else:
        code, text = sections.get("owner", (-1, ""))
        add(owner_check(text, code, sections.get("user", (0, ""))[1].strip(), session.base_dir))
    add(
        disk_check(
            sections.get("df", (-1, ""))[1], sections.get("df", (-1, ""))[0], session.base_dir
        )
    )
    check, report.clock_skew_s = skew_check(sections.get("clock", (-1, ""))[1], sent, received)
    add(check)
    add(containers_check(pre.get("runtimes") or {}))
    return report


def _skip_rest(report: DoctorReport, why: str) -> DoctorReport:
    """Add a ``skip`` line for every check not made yet."""
    done = {c.name for c in report.checks}
    report.checks.extend(Check(n, SKIP, why) for n in CHECK_NAMES if n not in done)
    return report


def _connect(session: Session, add: _Add) -> bool:
    transport = session.transport
    if session.backend_type == "local":
        add(Check("connectivity", OK, "local backend: commands run on this machine"))
        add(Check("authentication", OK, "not needed (local backend)"))
        return True
    where = transport.description
    hint = f"test by hand: ssh {session.hostname}"
    try:
        connect = getattr(transport, "connect", None)
        if connect is not None:
            connect()
        else:
            transport.run(["true"], timeout=60)
    except (HostKeyError, AuthenticationError) as exc:
        add(Check("connectivity", OK, f"{where} answers"))
        add(Check("authentication", FAIL, str(exc), hint, blocking=True))
        return False
    except TransportError as exc:
        add(Check("connectivity", FAIL, str(exc), hint, blocking=True))
        add(Check("authentication", SKIP, "needs a connection"))
        return False
    add(Check("connectivity", OK, f"{where} answers"))
    logins = getattr(transport, "logins", 1)
    add(Check("authentication", OK, f"logged in ({logins} login(s); the connection is reused)"))
    return True


def _commands(pre: dict[str, Any], sections: dict[str, tuple[int, str]], add: _Add) -> None:
    found: list[str] = []
    missing: list[str] = []
    fix = ""
    for name in ("sbatch", "squeue", "scontrol"):
        check = pre["checks"].get(name, {"ok": False, "fix": ""})
        (found if check["ok"] else missing).append(name)
        fix = fix or check["fix"]
    optional = [c for c in EXTRA_COMMANDS if sections.get(f"cmd_{c}", (1, ""))[0] != 0]
    found += [c for c in EXTRA_COMMANDS if c not in optional]
    if missing:
        add(
            Check(
                "slurm_commands",
                FAIL,
                f"not on the PATH: {', '.join(missing + optional)}",
                fix,
                blocking=True,
            )
        )
    elif optional:
        add(
            Check(
                "slurm_commands",
                WARN,
                f"not on the PATH: {', '.join(optional)} (found {', '.join(found)})",
                "install the full Slurm client there; partitions and "
                "final states of jobs squeue forgot need them",
            )
        )
    else:
        add(Check("slurm_commands", OK, ", ".join(found)))


def _controller(sections: dict[str, tuple[int, str]], add: _Add) -> None:
    code, text = sections.get("ping", (-1, "no output"))
    first = text.strip().splitlines()[0] if text.strip() else "no output"
    if code == 0 and " UP" in text:
        add(Check("controller", OK, first))
    else:
        add(
            Check(
                "controller",
                FAIL,
                f"slurmctld does not answer: {first}",
                "check `scontrol ping` there; ask the admins whether slurmctld runs",
                blocking=True,
            )
        )


def _accounting(sections: dict[str, tuple[int, str]], add: _Add) -> None:
    code, text = sections.get("accounting", (-1, "no output"))
    if code == 0 and "error" not in text.lower() and "disabled" not in text.lower():
        add(Check("accounting", OK, "sacct answers (slurmdbd reachable)"))
    else:
        first = text.strip().splitlines()[0] if text.strip() else "no output"
        add(
            Check(
                "accounting",
                WARN,
                f"sacct does not answer: {first}",
                "jobs still run, but final states of jobs squeue forgot come only from their "
                "result files; ask the admins whether slurmdbd runs",
            )
        )


def _python(pre: dict[str, Any], add: _Add) -> None:
    checks: dict[str, dict[str, Any]] = pre["checks"]
    python = checks.get("python", {"ok": False, "detail": "not checked", "fix": ""})
    info = pre.get("python") or {}
    if python["ok"]:
        asked = pre.get("python_version")  # packaging={"python_version": ...}, resolved
        how = f"; python_version={asked['asked']!r}, {asked['how']}" if asked else ""
        add(
            Check(
                "python",
                OK,
                f"{info.get('executable')} {info.get('version')} "
                f"({info.get('platform')}, {info.get('libc') or 'no libc info'}){how}",
            )
        )
    else:
        add(Check("python", FAIL, python["detail"], python["fix"], blocking=True))
    for name, check in checks.items():
        if (name.startswith("python_") or name == "shell") and not check["ok"]:
            add(Check(name, FAIL, check["detail"], check["fix"], blocking=True))
    packaging = pre.get("packaging", "none")
    if packaging == "none":
        detail = f"jobs run with {info.get('executable') or python.get('detail')} as is"
    else:
        how = f"uv ({pre['uv']})" if pre.get("uv") else "venv + pip"
        detail = f"{packaging} under {pre.get('job_base_dir')}/.envs, created with {how}"
        env = pre.get("environment")
        if env:
            detail += f"; in use: {env['python']}"
    add(Check("shipping", OK if python["ok"] else SKIP, detail))
