"""``slurm.validation``: the earlier SDK's checks of account, partition and job names, job
ids and environment variable names (see :mod:`slurm._slurm.validation`)."""

from slurm._slurm.validation import (
    validate_account,
    validate_environment_variable_name,
    validate_job_id,
    validate_job_name,
    validate_partition,
    validate_slurm_identifier,
)

__all__ = [
    "validate_account",
    "validate_environment_variable_name",
    "validate_job_id",
    "validate_job_name",
    "validate_partition",
    "validate_slurm_identifier",
]
