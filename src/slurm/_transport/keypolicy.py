"""The earlier SDK's ``host_key_policy``: what to do with an SSH host never seen before.

Apart from :mod:`slurm._transport.hostkeys` so that the settings read it without
importing paramiko (a local cluster's client never does).
"""

from __future__ import annotations

from slurm.errors import ConfigurationError

__all__ = ["HOST_KEY_POLICIES", "resolve_policy"]

#: The earlier SDK's ``host_key_policy`` values: what to do with a host never seen before.
HOST_KEY_POLICIES = ("reject", "warn", "auto")


def resolve_policy(policy: str | None, accept_new: bool) -> str:
    """One of :data:`HOST_KEY_POLICIES` from ``host_key_policy`` and ``accept_new_host_key``
    (``True`` is ``"auto"``); ``"reject"`` when neither is given.

    Raises:
        ConfigurationError: an unknown policy, or the two settings disagree.
    """
    if policy is None:
        return "auto" if accept_new else "reject"
    if policy not in HOST_KEY_POLICIES:
        raise ConfigurationError(
            f"host_key_policy must be one of {', '.join(HOST_KEY_POLICIES)}, got {policy!r}: "
            "reject refuses an unknown host (the default), warn accepts it for this "
            "connection only, auto accepts and saves it."
        )
    if accept_new and policy != "auto":
        raise ConfigurationError(
            f"accept_new_host_key=True is host_key_policy='auto', but host_key_policy="
            f"{policy!r} was given too; give one of them."
        )
    return policy
