"""Can the compute nodes see the job base directory and the interpreter? One ``srun``.

The login host may see paths the nodes do not: a directory under ``/tmp`` (each
node has its own), a virtual environment in a clone under ``/tmp``, a disk only
the login host mounts. A job that needs one fails only once it runs, in Slurm's
words (``couldn't chdir``, ``No such file or directory``). The preflight
(:mod:`slurm._client.preflight`) asks the nodes first, in the same shell script
it runs anyway, so the answer costs no extra round trip:

- on the login host, each directory to check gets a file ``.seen-by-nodes.PID``
  holding a token; one ``srun`` step of one task on one node (``--immediate``:
  it gives up rather than queue) reads the tokens back and runs the
  interpreter there (importing what the job will import);
- the answer is one ``node|KIND|STATUS|DETAIL`` line per check. A token read
  back proves the node sees the very directory (a node-local directory of the
  same name holds no token); a step that did not run (no ``srun``, no free
  node within the wait) answers ``node|run|fail|why``: not checked, not refused;
- what the nodes saw is remembered in the base directory's
  :data:`SEEN_FILE` (one ``KIND|PATH`` line each), so that later programs
  using the same base directory and interpreter send no ``srun`` at all.

Pure string work: :func:`srun_argv`, :func:`build_script` and
:func:`parse_output`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from slurm._wire.record import field, record

__all__ = [
    "JOB_NAME",
    "SEEN_FILE",
    "NodeView",
    "build_script",
    "parse_output",
    "srun_argv",
]

#: In the job base directory: what the nodes were seen to see (``dir|PATH``, ``python|PATH``).
SEEN_FILE = ".seen-by-nodes"

#: The probe's job name (in ``squeue`` while it runs, and in accounting).
JOB_NAME = "slurm-sdk-probe"

#: Seconds ``srun --immediate`` waits for a free node before giving up (not checked then).
IMMEDIATE = 20


def srun_argv(
    *,
    partition: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    immediate: int = IMMEDIATE,
) -> list[str]:
    """The ``srun`` of the probe: one task on one node, a minute at most, from ``/``."""
    argv = [
        "srun",
        "--nodes=1",
        "--ntasks=1",
        "--time=1",
        f"--immediate={immediate}",
        "--chdir=/",
        f"--job-name={JOB_NAME}",
        "--quiet",
        "--input=none",
    ]
    for name, value in (("partition", partition), ("account", account), ("qos", qos)):
        if value:
            argv.append(f"--{name}={value}")
    return argv


# Runs on the node: $1 the interpreter, $2 its modules (space-separated), then
# pairs of (directory, token file). Every line names the node.
_NODE = "\n".join(
    [
        'h=$(hostname 2>/dev/null || echo "a node"); py=$1; mods=$2; shift 2',
        'while [ "$#" -ge 2 ]; do',
        '  if [ "$(cat -- "$2" 2>/dev/null)" = "$2" ]; then echo "node|dir|ok|$h|$1";',
        '  else echo "node|dir|missing|$h|$1"; fi',
        "  shift 2",
        "done",
        'if [ -n "$py" ]; then',
        '  code="pass"; for m in $mods; do code="$code; import $m"; done',
        '  if out=$(cd / && "$py" -c "$code" 2>&1); then echo "node|python|ok|$h|";',
        '  else echo "node|python|fail|$h|$(printf %s "$out" | tail -n 2 | tr "\\n" " ")"; fi',
        "fi",
    ]
)


def build_script(
    base_dir: str,
    dirs: Sequence[str],
    python: str,
    *,
    modules: Sequence[str] = (),
    srun: Sequence[str] = (),
) -> str:
    """The shell lines (run on the login host, after ``base_dir`` exists) that ask a node.

    ``dirs`` are the directories to check (``base_dir`` first); ``python`` the
    interpreter to start there, with ``modules`` imported (``""``: no interpreter
    check). When :data:`SEEN_FILE` already lists every one of them, nothing runs.
    """
    q = shlex.quote
    wanted = [f"dir|{d}" for d in dirs] + ([f"python|{python}"] if python else [])
    seen = f"{base_dir}/{SEEN_FILE}"
    lines = [
        f"seen={q(seen)}; need=0",
        "for w in " + " ".join(q(w) for w in wanted) + "; do",
        '  grep -qxF -- "$w" "$seen" 2>/dev/null || need=1',
        "done",
        'if [ "$need" = 0 ]; then echo "node|cached|ok|$seen|";',
        "else",
        "  set --",
        "  for d in " + " ".join(q(d) for d in dirs) + "; do",
        '    t="$d/.seen-by-nodes.$$"',
        '    (umask 077; printf %s "$t" > "$t") 2>/dev/null && set -- "$@" "$d" "$t"',
        "  done",
        # A backstop beside --immediate: never hang the preflight on a stuck srun.
        '  to=""; command -v timeout >/dev/null 2>&1 && to="timeout 90"',
        "  out=$($to " + " ".join(q(a) for a in srun) + f" sh -c {q(_NODE)} sh "
        f'{q(python)} {q(" ".join(modules))} "$@" 2>&1); rc=$?',
        '  while [ "$#" -ge 2 ]; do rm -f -- "$2"; shift 2; done',
        '  if [ "$rc" = 0 ] && printf %s "$out" | grep -q "^node|"; then',
        '    printf "%s\\n" "$out" | grep "^node|"',
        '    printf "%s\\n" "$out" | grep -qE "^node[|][a-z]+[|](missing|fail)[|]" || {',
        "      for w in " + " ".join(q(w) for w in wanted) + "; do",
        '        grep -qxF -- "$w" "$seen" 2>/dev/null || printf "%s\\n" "$w" >> "$seen"',
        "      done; }",
        '  else echo "node|run|fail|$rc|$(printf %s "$out" | tail -n 3 | tr "\\n" " ")"; fi',
        "fi",
    ]
    return "\n".join(lines) + "\n"


@record(frozen=True)
class NodeView:
    """What one node saw: which directories are missing there, whether the interpreter ran.

    ``checked`` is False when the probe could not run (``why`` says so): nothing
    is known then, and nothing is refused.
    """

    checked: bool
    node: str = ""
    missing: tuple[str, ...] = ()
    python_error: str | None = None
    cached: bool = False
    why: str = ""
    dirs: Mapping[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every check that ran passed."""
        return not self.missing and self.python_error is None


def parse_output(stdout: str, dirs: Sequence[str], python: str) -> NodeView:
    """Read the ``node|...`` lines of :func:`build_script`'s output."""
    node = ""
    seen: dict[str, bool] = {}
    python_error: str | None = None
    python_seen = False
    for line in stdout.splitlines():
        parts = line.split("|", 4)
        if len(parts) < 4 or parts[0] != "node":
            continue
        kind, status = parts[1], parts[2]
        if kind == "cached":
            return NodeView(True, cached=True, dirs=dict.fromkeys(dirs, True))
        if kind == "run":
            detail = parts[4].strip() if len(parts) == 5 else ""
            return NodeView(False, why=f"srun exited {parts[3]}: {detail or 'no output'}")
        node = parts[3] or node
        detail = parts[4].strip() if len(parts) == 5 else ""
        if kind == "dir":
            seen[detail] = status == "ok"
        elif kind == "python":
            python_seen = True
            python_error = None if status == "ok" else (detail or "it did not start")
    if not seen and not python_seen:
        return NodeView(False, why="the probe printed nothing")
    missing = tuple(d for d in dirs if not seen.get(d, False))
    if python and not python_seen:
        python_error = "it was not checked"
    return NodeView(True, node, missing, python_error, dirs=seen)
