"""The batch script: golden text, sbatch directive quoting, hostile values through bash."""

from __future__ import annotations

import doctest
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import slurm._slurm.script
from slurm._slurm.options import sbatch_flags
from slurm._slurm.script import GENERATED_MARKER, quote_directive_arg, render_batch_script
from slurm.errors import InvalidOptionError

GOLDEN = Path(__file__).parent / "golden"

# Values that break naive quoting, in bash or in sbatch's #SBATCH parser.
HOSTILE = [
    "plain",
    "with space",
    "two  spaces and\ttab",
    "single ' quote",
    'double " quote',
    "both ' and \" quotes",
    "; echo pwned",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "${HOME} and $HOME",
    "back\\slash and trailing\\",
    "hash # not a comment",
    "#leading-hash",
    "glob * ? [a-z]",
    "ünïcödé ✓ 日本",
    "--looks-like-a-flag",
    "a=b=c",
    "100%j %x",
    "'",
    '"',
    "\\",
    " leading and trailing ",
]
NEWLINES = ["line\nbreak", "carriage\rreturn", "nul\x00byte"]


def sbatch_get_arguments(line: str) -> list[str]:
    """Split an #SBATCH line's argument text the way sbatch's ``_get_argument`` does.

    A faithful port of the tokenizer in Slurm's src/sbatch/opt.c: whitespace
    separates arguments; ``'...'`` and ``"..."`` group and are removed; a
    backslash makes the next character literal; an unquoted ``#`` ends the line.
    """
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return args
        arg: list[str] = []
        started = False
        quote = ""
        escape = False
        while i < n and (quote or not line[i].isspace()):
            c = line[i]
            if escape:
                escape = False
            elif c == "\\":
                escape = True
                i += 1
                continue
            elif quote:
                if c == quote:
                    quote = ""
                    i += 1
                    continue
            elif c in "\"'":
                quote = c
                i += 1
                continue
            elif c == "#":
                break
            arg.append(c)
            started = True
            i += 1
        if quote:
            raise ValueError(f"unmatched {quote} in {line!r}")
        if not started:
            # sbatch returns NULL for an empty argument, which ends the line.
            return args
        args.append("".join(arg))
        if i < n and line[i] == "#":
            return args


def directive_args(script: str) -> list[str]:
    """All arguments sbatch would read from the script's #SBATCH lines."""
    args: list[str] = []
    for line in script.splitlines():
        if line.startswith("#SBATCH"):
            args += sbatch_get_arguments(line[len("#SBATCH") :])
        elif line.strip() and not line.lstrip().startswith("#"):
            break
    return args


def test_doctests() -> None:
    assert doctest.testmod(slurm._slurm.script).failed == 0


def golden_options() -> dict[str, Any]:
    return {
        "job_name": "train-segment-3",
        "partition": "gpu",
        "account": "proj42",
        "time": "01:30:00",
        "mem": "16G",
        "cpus_per_task": 4,
        "gpus_per_node": 1,
        "output": "/scratch/jobs/run 1/%j.out",
        "error": "/scratch/jobs/run 1/%j.err",
        "requeue": None,
        "signal": "B:USR1@120",
        "exclusive": False,
        "python": "python3.11",
        "packaging": "auto",
    }


def render_golden() -> str:
    return render_batch_script(
        options=golden_options(),
        command=["python3.11", "-m", "slurm.runner", "/scratch/jobs/run 1/job-0007"],
        env={"SLURM_SDK_JOB_DIR": "/scratch/jobs/run 1/job-0007", "OMP_NUM_THREADS": "4"},
        setup=["module load cuda/12.1", "source /opt/venv/bin/activate"],
        workdir="/home/user/project",
    )


def test_golden_batch_script() -> None:
    path = GOLDEN / "batch_script.sh"
    text = render_golden()
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_script_layout() -> None:
    lines = render_golden().splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch_lines = [line for line in lines if line.startswith("#SBATCH ")]
    assert lines[1 : 1 + len(sbatch_lines)] == sbatch_lines
    assert lines[1 + len(sbatch_lines)] == GENERATED_MARKER
    assert lines[-1].startswith("exec ")
    assert not any("python3.11" in line for line in sbatch_lines)  # SDK options stay out
    assert not any("exclusive" in line for line in lines)  # False leaves it out


def test_the_first_lines_run_before_the_exports_and_the_cd() -> None:
    """The USR1 trap comes right after the marker: a warning during the exports or
    the cd would otherwise kill the batch shell."""
    script = render_batch_script(
        options={"time": "00:02:00"},
        command=["python3", "-m", "slurm.runner", "/j"],
        env={"A": "1"},
        workdir="/w",
        setup=["module load x"],
        first=["trap '' USR1"],
    )
    body = script.split(GENERATED_MARKER + "\n", 1)[1].splitlines()
    assert body[:3] == ["trap '' USR1", "export A=1", "cd -- /w || exit 1"]
    with pytest.raises(InvalidOptionError, match="strings"):
        render_batch_script(options={}, command=["true"], first=[1])  # type: ignore[list-item]


def test_directives_read_back_as_flags() -> None:
    assert directive_args(render_golden()) == sbatch_flags(golden_options())


def test_no_unset_loop_by_default() -> None:
    assert "unset" not in render_golden()


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", ["job_name", "output", "comment"])
def test_hostile_option_values_survive_directive_parsing(name: str, value: str) -> None:
    script = render_batch_script(options={name: value}, command=["true"])
    flag = "--" + name.replace("_", "-")
    assert directive_args(script) == [f"{flag}={value}"]


@pytest.mark.parametrize("value", NEWLINES)
def test_option_values_with_newlines_are_rejected(value: str) -> None:
    with pytest.raises(InvalidOptionError):
        render_batch_script(options={"job_name": value}, command=["true"])
    with pytest.raises(InvalidOptionError):
        quote_directive_arg(f"--job-name={value}")


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("--exclusive", "--exclusive"),
        ("--time=00:05:00", "--time=00:05:00"),
        ("--output=/a/%j.out", "--output=/a/%j.out"),
        ("--dependency=afterok:1:2", "--dependency=afterok:1:2"),
        ("--job-name=my job", '--job-name="my job"'),
        ('--job-name=say "hi"', '--job-name="say \\"hi\\""'),
        ("--comment=a\\b", '--comment="a\\\\b"'),
        ("--comment=#1", '--comment="#1"'),
        ("odd token", '"odd token"'),
    ],
)
def test_quote_directive_arg(arg: str, quoted: str) -> None:
    assert quote_directive_arg(arg) == quoted
    assert sbatch_get_arguments(quoted) == [arg]


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_script(script: str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "job.sh"
    path.write_text(script, encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLURM_INHERITED": "x"}
    env["SBATCH_INHERITED"] = "y"
    env["KEEP_ME"] = "z"
    proc = subprocess.run(["bash", str(path)], capture_output=True, env=env, timeout=30, check=True)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


DUMP = (
    "import json, os, sys; "
    "print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)}))"
)


@needs_bash
def test_hostile_values_through_bash(tmp_path: Path) -> None:
    workdir = tmp_path / "work dir; $(echo no) 'q' \"dq\" `x` ü"
    workdir.mkdir()
    env = {f"V{i}": value for i, value in enumerate(HOSTILE)}
    env["MULTI"] = "line one\nline two"
    script = render_batch_script(
        options={"job_name": HOSTILE[6]},
        command=[sys.executable, "-c", DUMP, *HOSTILE, "", "line\nbreak"],
        env=env,
        setup=["export FROM_SETUP=1"],
        workdir=str(workdir),
    )
    out = run_script(script, tmp_path)
    assert out["argv"] == [*HOSTILE, "", "line\nbreak"]
    assert out["cwd"] == str(workdir)
    for key, value in env.items():
        assert out["env"][key] == value
    assert out["env"]["FROM_SETUP"] == "1"
    assert out["env"]["SLURM_INHERITED"] == "x"  # nothing unset unless asked
    assert not (tmp_path / "pwned").exists()


@needs_bash
def test_missing_workdir_stops_the_job(tmp_path: Path) -> None:
    script = render_batch_script(
        options={}, command=["echo", "ran"], workdir=str(tmp_path / "missing")
    )
    path = tmp_path / "job.sh"
    path.write_text(script)
    proc = subprocess.run(["bash", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "ran" not in proc.stdout


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"env": {"1BAD": "x"}}, "not a valid shell identifier"),
        ({"env": {"A-B": "x"}}, "not a valid shell identifier"),
        ({"env": {"A B": "x"}}, "not a valid shell identifier"),
        ({"env": {"": "x"}}, "not a valid shell identifier"),
        ({"env": {"A": 1}}, "must be a str"),
        ({"env": {"A": "nul\x00"}}, "NUL"),
        ({"command": []}, "non-empty"),
        ({"command": "python -m x"}, "non-empty sequence"),
        ({"command": ["python", 3]}, "must be a str"),
        ({"setup": [1]}, "Setup lines"),
        ({"workdir": "/a\x00b"}, "NUL"),
        ({"options": {"cpu_per_task": 1}}, "cpus_per_task"),
        ({"options": {"output": "/a\nb"}}, "newline"),
    ],
)
def test_render_rejects(kwargs: dict[str, Any], fragment: str) -> None:
    arguments: dict[str, Any] = {"options": {}, "command": ["true"], **kwargs}
    with pytest.raises(InvalidOptionError) as info:
        render_batch_script(**arguments)
    assert fragment in str(info.value)


def test_setup_as_single_string() -> None:
    script = render_batch_script(options={}, command=["true"], setup="module load x")
    assert "\nmodule load x\nexec true\n" in script


def test_render_accepts_raw_option_names() -> None:
    script = render_batch_script(options={"name": "n", "Cpus-Per-Task": 2}, command=["true"])
    assert "#SBATCH --cpus-per-task=2\n#SBATCH --job-name=n\n" in script


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (":/a::rel/b:/c*:", "/a:/c*"),  # empty and relative entries go; no glob expansion
        ("", None),  # set but empty: unset (an empty PYTHONPATH is the working directory)
        (".", None),
        ("/only", "/only"),
        (None, None),
    ],
)
def test_absolute_pythonpath_keeps_only_absolute_entries(
    given: str | None, kept: str | None
) -> None:
    import subprocess

    from slurm._slurm.script import ABSOLUTE_PYTHONPATH

    env = {"PATH": "/usr/bin:/bin"} | ({} if given is None else {"PYTHONPATH": given})
    script = "\n".join([*ABSOLUTE_PYTHONPATH, 'echo "${PYTHONPATH-<unset>}"; echo "$IFS" | od -c'])
    out = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    first, *rest = out.stdout.splitlines()
    assert first == ("<unset>" if kept is None else kept)
    assert "\\t" in "".join(rest)  # IFS restored
