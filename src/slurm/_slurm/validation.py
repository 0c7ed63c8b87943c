"""Checks of the names users hand to Slurm: accounts, partitions, job names, job ids,
environment variable names (the earlier SDK's ``slurm.validation``).

Every value the SDK puts in a command or a batch script is quoted anyway
(:mod:`slurm._slurm.script`); these checks catch a typo or a hostile value
early, with a message naming the field. Each returns the value stripped of
surrounding blanks, or raises :class:`~slurm.errors.InvalidOptionError` (a
``ValueError`` too). Pure functions.
"""

from __future__ import annotations

import re

from slurm.errors import InvalidOptionError

__all__ = [
    "validate_account",
    "validate_environment_variable_name",
    "validate_job_id",
    "validate_job_name",
    "validate_partition",
    "validate_slurm_identifier",
]

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.-]+")
_JOB_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")
#: 123, 123_4 (an array element), 123_[0-9], 123_[0-9%2] (an array's range and limit)
_JOB_ID = re.compile(r"\d+(?:_(?:\d+|\[\d+(?:-\d+)?(?:%\d+)?\]))?")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_IDENTIFIER = 256
MAX_JOB_NAME = 1024


def _checked(
    value: str | None, field: str, pattern: re.Pattern[str], allowed: str, limit: int
) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidOptionError(f"{field} is empty; give a name such as 'debug' or 'my-run'.")
    if len(text) > limit:
        raise InvalidOptionError(
            f"{field} is {len(text)} characters long, more than the {limit} Slurm takes; "
            "shorten it."
        )
    if not pattern.fullmatch(text):
        bad = "".join(sorted({c for c in text if not pattern.fullmatch(c)}))
        raise InvalidOptionError(
            f"{field} {text!r} has characters Slurm names cannot hold ({bad!r}); use only "
            f"{allowed}."
        )
    return text


def validate_slurm_identifier(value: str, field_name: str, max_length: int = MAX_IDENTIFIER) -> str:
    """An account, partition or QOS-like name: letters, digits, ``_``, ``-`` and ``.``.

    Raises:
        InvalidOptionError: empty, too long, or another character.
    """
    return _checked(value, field_name, _IDENTIFIER, "letters, digits, '_', '-' and '.'", max_length)


def validate_account(account: str | None) -> str | None:
    """An account name, or None (no account asked for)."""
    return None if account is None else validate_slurm_identifier(account, "Account")


def validate_partition(partition: str | None) -> str | None:
    """A partition name, or None (the cluster's default partition)."""
    return None if partition is None else validate_slurm_identifier(partition, "Partition")


def validate_job_name(job_name: str | None) -> str | None:
    """A job name, or None: as an identifier, and ``:`` and ``/`` too."""
    if job_name is None:
        return None
    allowed = "letters, digits, '_', '-', '.', ':' and '/'"
    return _checked(job_name, "Job name", _JOB_NAME, allowed, MAX_JOB_NAME)


def validate_job_id(job_id: str) -> str:
    """A Slurm job id: ``123``, an array element ``123_4`` or range ``123_[0-9%2]``.

    Raises:
        InvalidOptionError: anything else (``slurm jobs list`` shows the ids).
    """
    text = str(job_id or "").strip()
    if not _JOB_ID.fullmatch(text):
        raise InvalidOptionError(
            f"{text!r} is not a Slurm job id: expected digits (123), an array element "
            "(123_4) or an array range (123_[0-9]). `slurm jobs list` shows your jobs' ids."
        )
    return text


def validate_environment_variable_name(name: str) -> str:
    """An environment variable's name: a letter or ``_``, then letters, digits or ``_``.

    Raises:
        InvalidOptionError: empty, or not such a name.
    """
    text = (name or "").strip()
    if not _VARIABLE.fullmatch(text):
        raise InvalidOptionError(
            f"{text!r} cannot name an environment variable: it must start with a letter or "
            "'_' and hold only letters, digits and '_' (e.g. DATA_DIR)."
        )
    return text
