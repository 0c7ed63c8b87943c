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
  using the same base directory and interpreter send no ``srun`` at all;
- a new base directory beside one the nodes saw needs no ``srun`` either: the
  probe also asks about the base directory's parent (when the user may write it
  and it is on the same filesystem), and the user's :data:`REGISTRY` on the
  login host remembers it (``HOST|near|DEVICE|PATH``, and ``HOST|python|PATH``
  for an interpreter). A directory beneath one listed there, on that very
  device (the login host's ``stat``, asked each time), counts as seen: a
  filesystem the nodes share at that path is shared below it. Another device
  (a disk mounted below it, the login host's own ``/tmp``), another login host
  sharing the home directory, or no ``stat -c``: asked with ``srun`` as before.

Pure string work: :func:`srun_argv`, :func:`build_script` and
:func:`parse_output`.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence

from slurm._wire.record import field, record

__all__ = [
    "JOB_NAME",
    "REGISTRY",
    "SEEN_FILE",
    "NodeView",
    "build_script",
    "parse_output",
    "srun_argv",
]

#: In the job base directory: what the nodes were seen to see (``dir|PATH``, ``python|PATH``).
SEEN_FILE = ".seen-by-nodes"

#: On the login host, per user: directories the nodes were seen to see, beneath which a new
#: base directory needs no probe (``$SLURM_SDK_SEEN_BY_NODES`` replaces it; tests use that).
REGISTRY = "${XDG_CACHE_HOME:-~/.cache}/slurm-sdk/seen-by-nodes"

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
# pairs of (directory, token file); a directory written ``+DIR`` is the base
# directory's parent, answered as ``near``. Every line names the node.
_NODE = "\n".join(
    [
        'h=$(hostname 2>/dev/null || echo "a node"); py=$1; mods=$2; shift 2',
        'while [ "$#" -ge 2 ]; do',
        "  k=dir; d=$1; case $d in +*) k=near; d=${d#+} ;; esac",
        '  if [ "$(cat -- "$2" 2>/dev/null)" = "$2" ]; then echo "node|$k|ok|$h|$d";',
        '  else echo "node|$k|missing|$h|$d"; fi',
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
    remember: bool = False,
) -> str:
    """The shell lines (run on the login host, after ``base_dir`` exists) that ask a node.

    ``dirs`` are the directories to check (``base_dir`` first); ``python`` the
    interpreter to start there, with ``modules`` imported (``""``: no interpreter
    check). When :data:`SEEN_FILE` already lists every one of them, nothing runs.

    With ``remember``, the user's :data:`REGISTRY` on the login host answers for a
    directory the base directory's file does not list yet: one beneath a directory
    the nodes were seen to see, on the same filesystem (the same device on the
    login host, checked now); and for an interpreter they were seen to start. The
    probe then asks a node about the base directory's parent too, when the user may
    write it and it is on the base directory's filesystem, and remembers it there,
    so that the next base directory beside this one needs no ``srun``.
    """
    q = shlex.quote
    wanted = [f"dir|{d}" for d in dirs] + ([f"python|{python}"] if python else [])
    each = "for w in " + " ".join(q(w) for w in wanted) + "; do"
    seen = f"{base_dir}/{SEEN_FILE}"
    near = posixpath.dirname(base_dir.rstrip("/"))
    lines = [
        f"seen={q(seen)}; need=1; from=$seen; py_line={q(wanted[-1]) if python else ''}",
        'if [ -f "$seen" ]; then',  # a new base directory has none: no grep per line
        "  need=0",
        "  " + each,
        '    grep -qxF -- "$w" "$seen" 2>/dev/null || need=1',
        "  done",
        "fi",
    ]
    if remember:
        lines += [_REGISTRY, 'if [ "$need" = 1 ] && [ -f "$reg" ] && [ -O "$reg" ]; then']
        lines += ["  need=0; " + _HOST, "  " + each, *_COVERED, "  done"]
        lines += [
            '  if [ "$need" = 0 ]; then',
            "    from=$reg",
            "    " + each,
            "      " + _NOTE_SEEN,
            "    done",
            "  fi",
            "fi",
        ]
    lines += [
        'if [ "$need" = 0 ]; then echo "node|cached|ok|$from|";',
        "else",
        "  set --",
        "  for d in " + " ".join(q(d) for d in dirs) + "; do",
        '    t="$d/.seen-by-nodes.$$"',
        '    (umask 077; printf %s "$t" > "$t") 2>/dev/null && set -- "$@" "$d" "$t"',
        "  done",
    ]
    if remember and near not in ("", "/"):
        lines += [
            f'  near={q(near)}; ndev=$(stat -c %d -- "$near" 2>/dev/null)',
            f"  bdev=$(stat -c %d -- {q(base_dir)} 2>/dev/null)",
            '  if [ -n "$ndev" ] && [ -w "$near" ] && [ "$ndev" = "$bdev" ]; then',
            '    t="$near/.seen-by-nodes.$$"',
            '    (umask 077; printf %s "$t" > "$t") 2>/dev/null && set -- "$@" "+$near" "$t"',
            "  fi",
        ]
    lines += [
        # A backstop beside --immediate: never hang the preflight on a stuck srun.
        '  to=""; command -v timeout >/dev/null 2>&1 && to="timeout 90"',
        "  out=$($to " + " ".join(q(a) for a in srun) + f" sh -c {q(_NODE)} sh "
        f'{q(python)} {q(" ".join(modules))} "$@" 2>&1); rc=$?',
        '  while [ "$#" -ge 2 ]; do rm -f -- "$2"; shift 2; done',
        '  if [ "$rc" = 0 ] && printf %s "$out" | grep -q "^node|"; then',
        '    printf "%s\\n" "$out" | grep "^node|"',
        '    printf "%s\\n" "$out" |',
        '      grep -qE "^node[|](dir|python)[|](missing|fail)[|]" || {',
        "      " + each,
        "        " + _NOTE_SEEN,
        "      done",
    ]
    if remember:
        lines += [_RECORD]
    lines += [
        "    }",
        '  else echo "node|run|fail|$rc|$(printf %s "$out" | tail -n 3 | tr "\\n" " ")"; fi',
        "fi",
    ]
    return "\n".join(lines) + "\n"


#: Inside a loop over $w: $w in the base directory's file, once.
_NOTE_SEEN = '{ [ -f "$seen" ] && grep -qxF -- "$w" "$seen"; } || printf "%s\\n" "$w" >> "$seen"'

#: Sets ``$reg``: the user's registry on the login host (:data:`REGISTRY`).
_REGISTRY = (
    "reg=${SLURM_SDK_SEEN_BY_NODES:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}"
    "/slurm-sdk/seen-by-nodes}"
)
#: Sets ``$host``: the login host's name, which the registry's lines begin with.
_HOST = "host=$(uname -n 2>/dev/null)"

# Inside the loop over $w: leaves need=0 only when the registry answers for $w.
_COVERED = [
    '    [ -f "$seen" ] && grep -qxF -- "$w" "$seen" && continue',
    "    ok=0",
    "    case $w in",
    "      dir\\|*)",
    '        d=${w#dir|}; dev=$(stat -c %d -- "$d" 2>/dev/null)',
    '        if [ -n "$dev" ] && [ -n "$host" ]; then',
    "          while IFS='|' read -r rh rk rd rp; do",
    '            [ "$rh|$rk|$rd" = "$host|near|$dev" ] || continue',
    '            case "$d/" in',
    '              "$rp"/*)',
    '                [ "$(stat -c %d -- "$rp" 2>/dev/null)" = "$dev" ] && { ok=1; break; } ;;',
    "            esac",
    '          done < "$reg"',
    "        fi ;;",
    '      *) [ -n "$host" ] && grep -qxF -- "$host|$w" "$reg" && ok=1 ;;',
    "    esac",
    '    [ "$ok" = 1 ] || { need=1; break; }',
]

# After a probe where everything passed: the parent the node saw (``near``) and the
# interpreter, in the registry; kept to its last lines.
_RECORD = "\n".join(
    [
        "      " + _REGISTRY + "; " + _HOST,
        '      if [ -n "$host" ] && (umask 077; mkdir -p -- "${reg%/*}") 2>/dev/null; then',
        "        add=",
        '        if printf "%s\\n" "$out" | grep -q "^node|near|ok|"; then',
        '          add="$host|near|$ndev|$near"',
        "        fi",
        "        for w in " + '"$add"' + ' ${py_line:+"$host|$py_line"}; do',
        '          [ -n "$w" ] || continue',
        '          grep -qxF -- "$w" "$reg" 2>/dev/null ||',
        '            (umask 077; printf "%s\\n" "$w" >> "$reg")',
        "        done",
        '        if [ "$(wc -l < "$reg")" -gt 256 ]; then',
        '          (umask 077; tail -n 128 -- "$reg" > "$reg.$$") && mv -f -- "$reg.$$" "$reg"',
        "        fi",
        "      fi",
    ]
)


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
