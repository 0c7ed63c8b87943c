"""Records (``slurm._wire.record``): the start path's dataclasses without dataclasses.

They must behave as the dataclasses they replaced wherever the SDK relies on it:
construction, defaults and factories, repr, equality and hashing, frozen fields,
pickling (payloads and envelopes cross the wire as pickles), replace.
"""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest

from slurm._job.context import JobContext
from slurm._wire.payload import Call, Envelope, Payload, RunPolicy
from slurm._wire.record import asdict, field, fields, record, replace


@record(frozen=True)
class Point:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    secret: str = field(default="", repr=False)


@record
class Counter:
    count: int = 0


@record(frozen=True)
class Point3(Point):
    z: int = 0


def test_fields_in_order_by_position_or_name_with_defaults_and_factories() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.secret) == (1, 0, [], "")
    assert Point(1, 2, ["a"]).tags == ["a"]
    assert Point(y=3, x=4) == Point(4, 3)
    assert Point(1).tags is not Point(1).tags  # a factory's value is made for each record
    assert fields(Point) == ("x", "y", "tags", "secret")
    assert Point.kind == "point" and "kind" not in fields(Point)  # a ClassVar is no field
    assert Point.__match_args__ == ("x", "y", "tags", "secret")


def test_wrong_arguments_are_refused_as_a_function_would() -> None:
    with pytest.raises(TypeError, match="missing required argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Point(1, w=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 4 arguments but 5 were given"):
        Point(1, 2, [], "", 5)  # type: ignore[call-arg]


def test_repr_equality_and_hash() -> None:
    assert repr(Point(1, 2, secret="s")) == "Point(x=1, y=2, tags=[])"
    assert Point(1) != Point(2) and Point(1) != Point3(1)  # another class is never equal
    assert hash(Point(1, 2, ())) == hash(Point(1, 2, ()))  # type: ignore[arg-type]
    assert Counter.__hash__ is None  # mutable and compared by value: unhashable, as dataclass
    with pytest.raises(TypeError):
        hash(Counter())


def test_frozen_records_refuse_changes_and_mutable_ones_take_them() -> None:
    p = Point(1)
    with pytest.raises(AttributeError, match="frozen Point"):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.x
    c = Counter()
    c.count += 1
    assert c == Counter(1)


def test_inherited_fields_come_first() -> None:
    assert fields(Point3) == ("x", "y", "tags", "secret", "z")
    assert Point3(1, z=5).z == 5


def test_replace_asdict_and_pickle() -> None:
    p = Point(1, 2, ["t"])
    assert replace(p, y=9) == Point(1, 9, ["t"]) and p.y == 2
    assert asdict(p) == {"x": 1, "y": 2, "tags": ["t"], "secret": ""}
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(TypeError, match="unexpected keyword"):
        replace(p, nope=1)


def test_the_wire_records_round_trip() -> None:
    payload = Payload(task="t", call=Call((1,), {"a": 2}), policy=RunPolicy(max_requeues=3))
    assert pickle.loads(pickle.dumps(payload)) == payload
    assert replace(payload.policy, requeue_on_time_limit=False).max_requeues == 3
    envelope = Envelope(ok=True, value=b"x", node="n1")
    assert Envelope.from_bytes(envelope.to_bytes()) == envelope
    assert "environment" not in repr(JobContext(environment={"TOKEN": "secret"}))
