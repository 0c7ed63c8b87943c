"""The cache entry record (slurm._wire.cache) and the renderers of ``slurm cache``."""

from __future__ import annotations

import json

import pytest

from slurm.cli.cache import list_lines, show_lines
from slurm.errors import ResultError
from slurm.inspect import CachedCall, CacheEntry

ENTRY = CacheEntry(
    key="ab" * 32,
    task="simulate",
    job_id="123_4",
    job_dir="/home/u/jobs/simulate-20261201-101500-a1b2c3",
    array_index=4,
    created=1_764_000_000.0,
    sdk_version="0.1.0",
    parts={"function": "sweep.simulate", "code": "c" * 64},
)


def test_an_entry_reads_back_as_it_was_written() -> None:
    assert CacheEntry.from_json(ENTRY.to_json()) == ENTRY
    assert ENTRY.paths.result == f"{ENTRY.job_dir}/results/4.pkl"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version 2"),
        ({"key": "not-a-key"}, "not a SHA-256"),
        ({"array_index": -1}, "array_index"),
        ({"parts": {"code": 1}}, "parts"),
        ({"surprise": 1}, "unexpected keyword"),
    ],
)
def test_anything_but_an_entry_of_this_version_is_refused(
    change: dict[str, object], message: str
) -> None:
    text = json.dumps({**json.loads(ENTRY.to_json()), **change})
    with pytest.raises(ResultError, match=message):
        CacheEntry.from_json(text, where="/c/x.json")
    with pytest.raises(ResultError, match="cannot be read"):
        CacheEntry.from_json("[1, 2]")


def test_list_and_show_render_every_field() -> None:
    lines = list_lines([CachedCall(ENTRY, "done"), CachedCall(ENTRY, "refused: a reason")], "/c")
    assert lines[0].split() == ["KEY", "TASK", "JOB", "STATE", "WRITTEN"]
    assert lines[1].split()[:4] == ["ab" * 6, "simulate", "123_4", "done"]
    assert lines[2].split()[3] == "refused"
    assert lines[-1] == "2 entries, 1 with a result (in /c)"
    assert list_lines([], "/c") == ["no cached results under /c"]
    shown = "\n".join(show_lines(CachedCall(ENTRY, "done")))
    assert f"key:       {'ab' * 32}" in shown and "(array element 4)" in shown
    assert "  function   sweep.simulate" in shown and f"result:    {ENTRY.paths.result}" in shown
