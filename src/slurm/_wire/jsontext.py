"""JSON for what every job writes and reads (its outcome, its usage record), from the
interpreter's C accelerator ``_json`` alone.

:mod:`json` is that accelerator behind two modules of Python that import :mod:`re`:
about 6 ms of each job's CPU here, for three small flat records (issue 27). The
scanner and the encoder below are the ones :mod:`json` itself calls, made with
:mod:`json`'s own defaults, so the text is the same to the byte. On a Python
without ``_json`` (PyPy...), :mod:`json` does the work.
"""

from __future__ import annotations

from slurm._types import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover (CPython has it)
    _ACCELERATED = False
else:
    _ACCELERATED = True

__all__ = ["dumps", "dumps_record", "loads"]

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Decoding:
    """What ``_json.make_scanner`` reads of a :class:`json.JSONDecoder`: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


# typeshed names the scanner's own type as its argument: any object with these fields does.
_scan = _json.make_scanner(_Decoding()) if _ACCELERATED else None  # type: ignore[arg-type]


def loads(text: str) -> Any:
    """``json.loads(text)``.

    Raises:
        ValueError: ``text`` is not one JSON value (:class:`json.JSONDecodeError` where
            the scanner says why).
    """
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(text)
    body = text.strip(_WHITESPACE)
    try:
        value, end = _scan(body, 0)
    except StopIteration:
        raise ValueError(f"not JSON: {text[:80]!r}") from None
    if end != len(body):
        raise ValueError(f"not one JSON value (more after character {end}): {text[:80]!r}")
    return value


def _refuse(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """``json.dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)``."""
    if not _ACCELERATED:  # pragma: no cover
        import json

        return json.dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    quote = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    encode = _json.make_encoder({}, _refuse, quote, None, ": ", ", ", sort_keys, False, True)
    return "".join(encode(value, 0))


def _nested(value: object) -> bool:
    return isinstance(value, (dict, list, tuple))


def dumps_record(record: Mapping[str, Any]) -> str:
    """``json.dumps(record, indent=1, ensure_ascii=False)`` of a flat record (a dict whose
    values are strings, numbers, booleans or None): a field a line, for a person to read."""
    flat = all(
        isinstance(k, str) and not isinstance(v, (dict, list, tuple)) for k, v in record.items()
    )
    if not record or not flat:
        import json  # json's own indentation

        return json.dumps(record, indent=1, ensure_ascii=False)
    lines = (
        f" {dumps(key, ensure_ascii=False)}: {dumps(v, ensure_ascii=False)}"
        for key, v in record.items()
    )
    return "{\n" + ",\n".join(lines) + "\n}"
