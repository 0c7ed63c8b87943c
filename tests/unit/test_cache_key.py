"""The key of a cached call (slurm._client.cachekey): what changes it and what does not.

Pure: no Slurm, no files but the modules written here to be edited.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slurm import task
from slurm._api.task import Task
from slurm._client.cachekey import CachePolicy, KeyMaker, cache_policy, stable_bytes
from slurm._wire.payload import Call, JobRef
from slurm.errors import ConfigurationError, InvalidOptionError


@task(cache=True)
def scale(x: int, factor: int = 2, *extra: int, **named: int) -> int:
    return x * factor


@task(cache=True)
def other(x: int, factor: int = 2, *extra: int, **named: int) -> int:
    return x * factor


def _maker(
    t: Task[Any, Any] = scale,
    policy: CachePolicy | None = None,
    options: dict[str, Any] | None = None,
    python: str = "/usr/bin/python3",
    image: str | None = None,
) -> KeyMaker:
    return KeyMaker(t, policy or CachePolicy(), options or {}, python=python, image=image)


def _key(*args: Any, maker: KeyMaker | None = None, **kwargs: Any) -> str:
    return (maker or _maker()).key(Call(args, kwargs))[0]


def test_the_same_call_has_the_same_key_however_its_arguments_are_spelled() -> None:
    assert _key(3) == _key(3, 2) == _key(x=3) == _key(3, factor=2) == _key(factor=2, x=3)
    assert _key(3, 2, a=1, b=2) == _key(3, 2, b=2, a=1)  # **named by name
    assert len(_key(3)) == 64


def test_an_argument_changes_the_key_and_only_its_part() -> None:
    maker = _maker()
    (one, parts_one), (two, parts_two) = maker.keys([Call((3,), {}), Call((4,), {})])
    assert one != two
    changed = {name for name in parts_one if parts_one[name] != parts_two[name]}
    assert changed == {"arguments"}
    assert _key(3, 2, 5) != _key(3, 2) and _key(3, a=1) != _key(3, a=2)


def test_another_function_with_the_same_body_has_another_key() -> None:
    assert _key(3) != _key(3, maker=_maker(other))


def test_sets_of_strings_hash_alike_in_every_process() -> None:
    # Sets of strings iterate in an order that depends on PYTHONHASHSEED.
    value = {"a": {"x", "y", "z", "w"}, "b": [frozenset({"p", "q", "r"})]}
    script = textwrap.dedent(
        """
        from slurm._client.cachekey import stable_digest
        print(stable_digest({"a": {"x", "y", "z", "w"}, "b": [frozenset({"p", "q", "r"})]}))
        """
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        for seed in (1, 2, 3, 4)
    }
    assert len(digests) == 1
    again = {"a": {"w", "z", "y", "x"}, "b": [frozenset({"r", "q", "p"})]}
    assert stable_bytes(value) == stable_bytes(again)


class _FakeJob:
    def __init__(self, job_id: str, path: str) -> None:
        self.job_id, self.path = job_id, path

    def __slurm_job_ref__(self) -> JobRef:
        return JobRef((self.job_id,), result_path=self.path)


def test_a_job_argument_counts_as_the_run_it_names() -> None:
    assert _key(_FakeJob("7", "/j/a/result.pkl")) == _key(_FakeJob("7", "/j/a/result.pkl"))
    assert _key(_FakeJob("7", "/j/a/result.pkl")) != _key(_FakeJob("8", "/j/b/result.pkl"))


@pytest.mark.parametrize("what", ["lock", "TextIOWrapper"])
def test_an_argument_that_cannot_be_hashed_names_itself_and_cache_key(
    what: str, tmp_path: Path
) -> None:
    with open(tmp_path / "data.txt", "w") as handle:
        value = threading.Lock() if what == "lock" else handle
        with pytest.raises(ConfigurationError) as info:
            _key(3, f=value)
    message = str(info.value)
    assert "argument '**f'" in message and what in message
    assert "cache_key=" in message and "Nothing was submitted" in message


def test_cache_key_replaces_the_arguments() -> None:
    maker = _maker(policy=CachePolicy(key_fn=lambda x, **kw: x))
    with open(__file__) as handle:  # an open file is no problem once cache_key= names the call
        assert _key(3, f=handle, maker=maker) == _key(3, f=None, maker=maker)
    assert _key(3, maker=maker) != _key(4, maker=maker)
    failing = _maker(policy=CachePolicy(key_fn=lambda x: 1 / 0))
    with pytest.raises(ConfigurationError, match="cache_key= function raised ZeroDivisionError"):
        _key(3, maker=failing)


def test_only_the_options_named_by_cache_on_count() -> None:
    plain = {"partition": "a", "time": "5"}
    assert _key(3, maker=_maker(options=plain)) == _key(
        3, maker=_maker(options={"partition": "b", "time": "50"})
    )
    on = CachePolicy(on=("partition",))
    assert _key(3, maker=_maker(policy=on, options=plain)) != _key(
        3, maker=_maker(policy=on, options={**plain, "partition": "b"})
    )
    assert _key(3, maker=_maker(policy=on, options=plain)) == _key(
        3, maker=_maker(policy=on, options={**plain, "time": "50"})
    )


def test_the_interpreter_and_the_image_count() -> None:
    assert _key(3) != _key(3, maker=_maker(python="/envs/abc/venv/bin/python"))
    assert _key(3) != _key(3, maker=_maker(image="registry/img:1"))


def test_cache_options_are_checked_when_the_task_is_made() -> None:
    with pytest.raises(InvalidOptionError, match="cache=1"):
        task(cache=1)(lambda: None)
    with pytest.raises(InvalidOptionError, match="'partitoin' is no option name"):
        task(cache=True, cache_on=["partitoin"])(lambda: None)
    with pytest.raises(InvalidOptionError, match="cache_key="):
        task(cache=True, cache_key="x")(lambda: None)
    stray = Task(lambda: None, {"cache_on": "partition"})
    with pytest.raises(ConfigurationError, match="only take effect with cache=True"):
        cache_policy(stray, stray.options)
    assert cache_policy(scale, {"cache": True, "cache_on": "Partition"}) == CachePolicy(
        on=("partition",)
    )
    assert cache_policy(scale, {"cache": False}) is None


# --- the code: the function's source and its local modules -------------------------------


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two task modules beside a helper: ``stage_a`` imports ``helper``, ``stage_b`` not."""
    files = {
        "helper.py": "def offset():\n    return 1\n",
        "stage_a.py": (
            "from slurm import task\nimport helper\n\n"
            "@task(cache=True)\ndef a(x):\n    return x + helper.offset()\n"
        ),
        "stage_b.py": "from slurm import task\n\n@task(cache=True)\ndef b(x):\n    return x\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("helper", "stage_a", "stage_b"):
        sys.modules.pop(name, None)


def _module_keys() -> tuple[str, str]:
    importlib.invalidate_caches()
    for name in ("helper", "stage_a", "stage_b"):
        if name in sys.modules:
            importlib.reload(sys.modules[name])
    stage_a = importlib.import_module("stage_a")
    stage_b = importlib.import_module("stage_b")
    return _key(1, maker=_maker(stage_a.a)), _key(1, maker=_maker(stage_b.b))


def _edit(path: Path, old: str, new: str) -> None:
    import os

    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    stat = path.stat()  # a new mtime even within the same clock tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_editing_a_helper_module_changes_only_the_calls_that_import_it(project: Path) -> None:
    a_before, b_before = _module_keys()
    assert _module_keys() == (a_before, b_before)  # nothing edited: the same keys
    _edit(project / "helper.py", "return 1", "return 2")
    a_after, b_after = _module_keys()
    assert a_after != a_before and b_after == b_before


def test_editing_the_function_body_changes_its_key(project: Path) -> None:
    a_before, b_before = _module_keys()
    _edit(project / "stage_b.py", "return x\n", "return -x\n")
    a_after, b_after = _module_keys()
    assert b_after != b_before and a_after == a_before


def test_a_function_from_main_counts_its_helpers_and_constants() -> None:
    def make(helper_body: str, scale: int) -> Task[Any, Any]:
        scope: dict[str, Any] = {"__name__": "__main__"}
        source = (
            f"SCALE = {scale}\ndef helper(x):\n    {helper_body}\n"
            "def f(x):\n    return helper(x) * SCALE\n"
        )
        exec(compile(source, "<notebook cell>", "exec"), scope)
        return Task(scope["f"], {"cache": True})

    base = make("return x", 2)
    assert base.reference_module is None  # it travels by value
    assert _key(1, maker=_maker(base)) == _key(1, maker=_maker(make("return x", 2)))
    assert _key(1, maker=_maker(base)) != _key(1, maker=_maker(make("return x + 1", 2)))
    assert _key(1, maker=_maker(base)) != _key(1, maker=_maker(make("return x", 3)))
