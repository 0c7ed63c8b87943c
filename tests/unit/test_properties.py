"""Property-based tests (hypothesis) of the parsers of Slurm's output and of option rendering.

Each parser is fed what Slurm prints for arbitrary jobs (ids, states, node
lists, reasons with ``|`` in them, warnings around an id); each renderer's
output is read back by a model of the program that reads it (sbatch's
``#SBATCH`` line parser, bash's quoting through :mod:`shlex`).
"""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from slurm._slurm.commands import (
    JobState,
    expand_array_ids,
    parse_sacct,
    parse_sbatch_output,
    parse_squeue,
)
from slurm._slurm.options import sbatch_flags
from slurm._slurm.script import quote_directive_arg, render_batch_script

settings.register_profile("slurm-sdk", max_examples=200, deadline=None)
settings.load_profile("slurm-sdk")

LINE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),  # lone surrogates are refused (test_options.py)
        blacklist_characters="\n\r\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    ),
    max_size=40,
)
FIELD = LINE_TEXT.filter(lambda t: "|" not in t and t == t.strip())
JOB_ID = st.integers(min_value=1, max_value=10**9).map(str)
ELEMENT_ID = st.one_of(
    JOB_ID, st.tuples(JOB_ID, st.integers(0, 10**6)).map(lambda t: f"{t[0]}_{t[1]}")
)
STATE = st.sampled_from([s for s in JobState if s is not JobState.UNKNOWN])


@given(st.lists(st.tuples(ELEMENT_ID, STATE, FIELD, FIELD, FIELD, LINE_TEXT), max_size=8))
def test_parse_squeue_reads_back_every_row(rows: list[tuple[str, ...]]) -> None:
    text = "".join("|".join([i, s.value, n, a, b, r]) + "\n" for i, s, n, a, b, r in rows)
    parsed = parse_squeue(text)
    last = {row[0]: row for row in rows}  # the last row for an id wins
    assert set(parsed) == set(last)
    for job_id, (_, state, nodes, _, _, reason) in last.items():
        info = parsed[job_id]
        assert info.state is state
        assert info.reason == ("" if reason.strip() == "None" else reason.strip())
        assert (info.node or "") in ("", nodes)


@given(
    st.lists(
        st.tuples(ELEMENT_ID, STATE, st.integers(0, 255), st.integers(0, 64), LINE_TEXT),
        max_size=8,
    ),
    st.booleans(),
)
def test_parse_sacct_reads_back_rows_and_skips_steps(
    rows: list[tuple[str, JobState, int, int, str]], with_steps: bool
) -> None:
    lines = []
    for job_id, state, code, sig, reason in rows:
        lines.append(f"{job_id}|{state.value}|{code}:{sig}|node1|a|b|{reason}")
        if with_steps:
            lines.append(f"{job_id}.batch|FAILED|9:9|node1|a|b|None")
    parsed = parse_sacct("\n".join(lines) + "\n")
    assert set(parsed) == {row[0] for row in rows}
    for job_id, state, code, sig, _ in {row[0]: row for row in rows}.values():
        assert (parsed[job_id].state, parsed[job_id].exit_code, parsed[job_id].signal) == (
            state,
            code,
            sig,
        )


@given(
    JOB_ID,
    st.lists(LINE_TEXT.filter(lambda t: not t.strip().split(";")[0].isdigit()), max_size=4),
    st.one_of(st.just(""), st.from_regex(r"\A;[a-z0-9_-]{1,20}\Z")),
)
def test_parse_sbatch_output_finds_the_id_among_warnings(
    job_id: str, warnings: list[str], cluster: str
) -> None:
    stdout = "".join(w + "\n" for w in warnings) + job_id + cluster + "\n"
    assert parse_sbatch_output(stdout) == job_id


@given(JOB_ID, st.lists(st.integers(0, 10_000), min_size=1, max_size=6, unique=True))
def test_expand_array_ids_expands_what_squeue_compresses(base: str, indices: list[int]) -> None:
    indices.sort()
    spec = ",".join(str(i) for i in indices)
    assert expand_array_ids(f"{base}_[{spec}%2]") == [f"{base}_{i}" for i in indices]


def _sbatch_words(line: str) -> list[str]:
    """What sbatch reads from an ``#SBATCH`` line (see slurm._slurm.script's docstring): words split
    at whitespace, quotes group and are dropped, a backslash takes the next character
    literally, an unquoted ``#`` ends the line; nothing is expanded."""
    words: list[str] = []
    word: list[str] | None = None
    quote = ""
    chars = iter(line)
    for c in chars:
        if c == "\\":
            word = word if word is not None else []
            word.append(next(chars, ""))
        elif quote:
            if c == quote:
                quote = ""
            else:
                word = word if word is not None else []
                word.append(c)
        elif c in "\"'":
            quote = c
            word = word if word is not None else []
        elif c == "#":
            break
        elif c.isspace():
            if word is not None:
                words.append("".join(word))
            word = None
        else:
            word = word if word is not None else []
            word.append(c)
    if word is not None:
        words.append("".join(word))
    return words


@given(LINE_TEXT.filter(lambda t: t.strip() != ""))
def test_directive_quoting_reads_back_exactly(value: str) -> None:
    arg = f"--comment={value}"
    assert _sbatch_words(quote_directive_arg(arg)) == [arg]


OPTION_VALUES = st.one_of(
    LINE_TEXT.filter(lambda t: t.strip() != "" and t == t.strip()),
    st.integers(min_value=1, max_value=1000),
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "job_name": OPTION_VALUES,
            "partition": OPTION_VALUES,
            "constraint": OPTION_VALUES,
            "cpus_per_task": st.integers(1, 64),
            "exclusive": st.just(True),
        },
    ),
    st.lists(LINE_TEXT, min_size=1, max_size=4),
)
def test_rendered_script_carries_options_and_command_unchanged(
    options: dict[str, object], command: list[str]
) -> None:
    script = render_batch_script(options=options, command=command)
    directives = [
        word
        for line in script.splitlines()
        if line.startswith("#SBATCH ")
        for word in _sbatch_words(line.removeprefix("#SBATCH "))
    ]
    assert directives == sbatch_flags(options)
    exec_line = script.splitlines()[-1]
    assert shlex.split(exec_line.removeprefix("exec ")) == command
