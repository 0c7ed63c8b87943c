"""``get_result(trusted=False)``: only plain data is rebuilt, nothing in a result runs."""

from __future__ import annotations

import datetime
import decimal
import pickle
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from slurm._wire.payload import Envelope, envelope_for_exception, envelope_for_value, plain_loads
from slurm.errors import ResultError, TaskFailedError


class _Touch:
    """A pickle that runs code when loaded: it creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


PLAIN: list[Any] = [
    {"loss": 0.25, "steps": [1, 2, 3], "name": "ü", "raw": b"\x00", "ok": True, "none": None},
    (1, 2.5, 3j, frozenset({1}), {2}, bytearray(b"x"), range(3)),
    datetime.datetime(2026, 12, 1, 23, 0, tzinfo=datetime.UTC),
    decimal.Decimal("1.10"),
    uuid.UUID(int=7),
    PurePosixPath("/a/b"),
]


@pytest.mark.parametrize("value", PLAIN)
def test_plain_data_comes_back_equal(value: Any) -> None:
    assert plain_loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) == value


def test_a_pickle_that_runs_code_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    data = pickle.dumps({"value": _Touch(marker)})
    with pytest.raises(pickle.UnpicklingError, match="is not plain data"):
        plain_loads(data)
    assert not marker.exists()
    pickle.loads(data)
    assert marker.exists()


def test_an_untrusted_envelope_is_read_without_running_what_it_holds(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    forged = pickle.dumps({"ok": True, "value": b"", "version": 1, "x": _Touch(marker)})
    with pytest.raises(ResultError):
        Envelope.from_bytes(forged, job_id="7", trusted=False)
    value = envelope_for_value(_Touch(marker), job_id="7")
    with pytest.raises(ResultError, match="not plain data"):
        Envelope.from_bytes(value.to_bytes(), job_id="7", trusted=False).unwrap(trusted=False)
    assert not marker.exists()


def test_an_untrusted_error_is_named_not_rebuilt() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        envelope = envelope_for_exception(exc, job_id="7")
    read = Envelope.from_bytes(envelope.to_bytes(), trusted=False)
    with pytest.raises(TaskFailedError, match="KeyError") as info:
        read.unwrap(trusted=False)
    assert info.value.type_name.endswith("KeyError")
    with pytest.raises(KeyError):
        read.unwrap()
