"""A cluster whose Python is another minor version than the client's (3.11 or later)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from slurm import Task, task
from slurm._client.submission import check_by_value
from slurm._wire.payload import Call, Payload, RunPolicy, dumps_payload
from slurm.errors import ConfigurationError

OTHER = (3, sys.version_info[1] + 2)
HERE = sys.version_info[:2]


@task
def by_reference(x: int) -> int:
    return x + 1


class Local:
    pass


def _payload(chosen: Task[Any, Any], *args: Any) -> bytes:
    data, _ = dumps_payload(Payload(chosen, Call(args), RunPolicy(max_requeues=0)))
    return data


def test_a_call_by_reference_with_plain_data_runs_on_another_minor_version() -> None:
    check_by_value(by_reference, [_payload(by_reference, 1)], OTHER)
    check_by_value(by_reference, [_payload(by_reference, {"a": [1.5, "b"]})], OTHER)


def test_a_function_that_travels_by_value_is_refused_naming_it_and_the_ways_out() -> None:
    def inner(x: int) -> int:  # a function defined in a function: travels by value
        return x

    chosen = task(inner)
    assert chosen.reference_module is None
    with pytest.raises(ConfigurationError) as info:
        check_by_value(chosen, [_payload(chosen, 1)], OTHER)
    message = str(info.value)
    assert "inner() is defined in __main__" in message and "Nothing was submitted" in message
    assert f"Python {OTHER[0]}.{OTHER[1]}" in message and "move that code into a module" in message
    check_by_value(chosen, [_payload(chosen, 1)], HERE)  # the same version: fine
    check_by_value(chosen, [_payload(chosen, 1)], None)  # not known yet: not refused here


def test_an_argument_holding_code_by_value_is_refused_too() -> None:
    with pytest.raises(ConfigurationError, match="an argument of by_reference"):
        check_by_value(by_reference, [_payload(by_reference, lambda: 1)], OTHER)
    # An instance of a class importable on the cluster is plain data.
    check_by_value(by_reference, [_payload(by_reference, Local())], OTHER)
