"""slurm._wire.jsontext: the job's JSON from ``_json`` alone gives json's own text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slurm._wire import jsontext

RECORDS: list[dict[Any, Any]] = [
    {"ok": True, "type_name": "", "message": 'é ü\n"x"', "job_id": None, "version": 1},
    {"cpu_s": 0.015625, "ended": 1764880000.123, "node": "node01", "gpus": None, "nan": 1e400},
    {},
    {"nested": [1, 2], "more": {"b": 1}},  # not flat: json's own indentation
    {1: 2, 3: "a"},  # keys that are not strings
]


@pytest.mark.parametrize("record", RECORDS)
def test_dumps_is_json_dumps(record: dict[Any, Any]) -> None:
    assert jsontext.dumps(record) == json.dumps(record)
    assert jsontext.dumps(record, sort_keys=True) == json.dumps(record, sort_keys=True)
    assert jsontext.dumps(record, ensure_ascii=False) == json.dumps(record, ensure_ascii=False)
    assert jsontext.dumps_record(record) == json.dumps(record, indent=1, ensure_ascii=False)


@pytest.mark.parametrize(
    "text", ['{"a": 1, "b": [1.5, null, true, "x\\u00e9"]}', " 3 ", '"s"\n', "NaN", "[-Infinity]"]
)
def test_loads_is_json_loads(text: str) -> None:
    assert repr(jsontext.loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a": 1} x', "[1,]", '"abc', "nul"])
def test_what_is_not_one_json_value_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        jsontext.loads(text)


def test_what_json_cannot_encode_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        jsontext.dumps({"a": object()})
