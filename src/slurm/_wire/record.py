"""Records: the dataclasses of a job's start path, without :mod:`dataclasses` (issue 27).

Every job imports the payload, layout, run-log and context classes before its
call. As :func:`dataclasses.dataclass` classes they cost more than half of the
SDK's part of a job's start: the module pulls in :mod:`inspect` (with ``ast``,
``dis`` and ``tokenize``), and each class ``exec``s the source of its
``__init__``, ``__repr__``, ``__eq__`` and, when frozen, ``__setattr__`` (about
0.5 ms a class, 16 classes). :func:`record` gives a class the same methods
from shared functions that read the fields from the class, with nothing
compiled; mypy sees a dataclass (``dataclass_transform``).

What a record has: an ``__init__`` taking the fields in order or by name,
defaults and :func:`field` ``default_factory``, ``__repr__`` (without the
fields marked ``repr=False``), ``__eq__`` between records of one class,
``__hash__`` and read-only attributes when ``frozen``, ``__match_args__``, and
:func:`replace`. :mod:`dataclasses`' functions do not take records: use
:func:`replace`, :func:`fields` and :func:`asdict` from here.
"""

from __future__ import annotations

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> object:
        return lambda fn: fn


__all__ = ["asdict", "field", "fields", "record", "replace"]

_FIELDS = "__record_fields__"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class _Field:
    """A field given by :func:`field`: a factory for its default, and whether repr shows it."""

    __slots__ = ("default", "default_factory", "repr")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None, repr: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    repr: bool = True,
) -> Any:
    """A field's default made anew for each record (``default_factory``), or one left out
    of ``repr``; as :func:`dataclasses.field`."""
    return _Field(default, default_factory, repr)


class _Spec:
    __slots__ = ("default", "factory", "name", "repr")

    def __init__(self, name: str, default: Any, factory: Callable[[], Any] | None, repr: bool):
        self.name = name
        self.default = default
        self.factory = factory
        self.repr = repr


def _is_class_var(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _specs(cls: type) -> tuple[_Spec, ...]:
    inherited: dict[str, _Spec] = {}
    for base in reversed(cls.__mro__[1:]):
        for spec in base.__dict__.get(_FIELDS, ()):
            inherited[spec.name] = spec
    # The class's own annotations (3.10 and later never inherit them; 3.14 computes them).
    for name, annotation in getattr(cls, "__annotations__", {}).items():
        if _is_class_var(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            spec = _Spec(name, value.default, value.default_factory, value.repr)
            if value.default is _MISSING:
                delattr(cls, name)  # a factory's field has no class attribute
            else:
                setattr(cls, name, value.default)
        else:
            spec = _Spec(name, value, None, True)
        inherited.pop(name, None)
        inherited[name] = spec
    return tuple(inherited.values())


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    specs: tuple[_Spec, ...] = getattr(type(self), _FIELDS)
    if len(args) > len(specs):
        raise TypeError(
            f"{type(self).__name__}() takes {len(specs)} arguments but {len(args)} were given"
        )
    values = self.__dict__
    for spec, value in zip(specs, args, strict=False):
        values[spec.name] = value
    for name, value in kwargs.items():
        if name in values:
            raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
        values[name] = value
    for spec in specs:
        if spec.name in values:
            continue
        if spec.factory is not None:
            values[spec.name] = spec.factory()
        elif spec.default is _MISSING:
            raise TypeError(f"{type(self).__name__}() missing required argument {spec.name!r}")
        else:
            values[spec.name] = spec.default
    if len(values) != len(specs):  # a name no field has (the object is never returned)
        known = {spec.name for spec in specs}
        unknown = ", ".join(repr(name) for name in values if name not in known)
        raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown}")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(obj.__dict__[spec.name] for spec in getattr(type(obj), _FIELDS))


def _repr(self: Any) -> str:
    shown = ", ".join(
        f"{spec.name}={self.__dict__[spec.name]!r}"
        for spec in getattr(type(self), _FIELDS)
        if spec.repr
    )
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


@dataclass_transform(field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record: ``@record`` or ``@record(frozen=True)``, as ``@dataclass``."""

    def wrap(cls: type) -> type:
        specs = _specs(cls)
        methods: dict[str, Any] = {
            _FIELDS: specs,
            "__init__": _init,
            "__match_args__": tuple(spec.name for spec in specs),
        }
        if "__repr__" not in cls.__dict__:
            methods["__repr__"] = _repr
        if "__eq__" not in cls.__dict__:
            methods["__eq__"] = _eq
            methods["__hash__"] = _hash if frozen else None
        if frozen:
            methods["__setattr__"] = _frozen_setattr
            methods["__delattr__"] = _frozen_delattr
        for name, method in methods.items():
            setattr(cls, name, method)
        return cls

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> tuple[str, ...]:
    """The names of a record's (or a record class's) fields, in order."""
    cls = obj if isinstance(obj, type) else type(obj)
    return tuple(spec.name for spec in getattr(cls, _FIELDS))


def asdict(obj: Any) -> dict[str, Any]:
    """A record's fields as a dict (one level: fields that are records stay records)."""
    return {spec.name: obj.__dict__[spec.name] for spec in getattr(type(obj), _FIELDS)}


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes``; as :func:`dataclasses.replace`, which
    it calls for a dataclass (code that holds either needs no test of which)."""
    if not hasattr(type(obj), _FIELDS):
        import dataclasses

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    return type(obj)(**{**asdict(obj), **changes})
