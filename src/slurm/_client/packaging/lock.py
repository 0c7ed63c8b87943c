"""A lock on the cluster's shared filesystem: one creator per environment.

The lock is a directory created with ``mkdir`` (atomic: exactly one caller
succeeds) holding an ``owner`` file with the holder's host, pid, time and a
random id. While it works, the holder touches the directory every
``heartbeat`` seconds. A waiter polls until the environment's ready marker
appears or the lock is free; it breaks a lock whose directory has not been
touched for ``stale_after`` seconds (by the cluster's own clock, so clock skew
between clients does not matter), which only happens when its holder died.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slurm._transport.base import Transport
from slurm.errors import ConfigurationError

__all__ = ["DirLock", "LockPolicy"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockPolicy:
    """How long to wait for, and when to break, another creator's lock (seconds)."""

    timeout: float = 1800.0
    stale_after: float = 600.0
    poll: float = 1.0
    heartbeat: float = 30.0


class DirLock:
    """An ``mkdir`` lock at ``path`` on ``transport``; see the module docstring.

    Example::

        lock = DirLock(transport, f"{env}/.lock")
        if lock.acquire(ready_path=f"{env}/ready.json"):
            try:
                ...  # create the environment, write the ready marker last
            finally:
                lock.release()
    """

    def __init__(
        self,
        transport: Transport,
        path: str,
        policy: LockPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.path = path
        self.policy = policy or LockPolicy()
        self.id = secrets.token_hex(8)
        self._sleep = sleep
        self._held = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def owner(self) -> dict[str, object]:
        """The holder's record, ``{}`` when unreadable (being written, or released)."""
        try:
            data = json.loads(self.transport.read_text(f"{self.path}/owner"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def age(self) -> float | None:
        """Seconds since the lock directory was last touched, by the cluster's clock."""
        script = 'echo $(( $(date +%s) - $(stat -c %Y "$1") ))'
        result = self.transport.run(["sh", "-c", script, "sh", self.path], check=False)
        try:
            return float(result.stdout.strip()) if result.returncode == 0 else None
        except ValueError:
            return None

    def acquire(self, *, ready_path: str | None = None) -> bool:
        """Take the lock; ``False`` (without it) as soon as ``ready_path`` exists.

        Raises:
            ConfigurationError: The lock stayed held, and fresh, for ``policy.timeout``.
        """
        deadline = time.monotonic() + self.policy.timeout
        waited = False
        while True:
            if ready_path is not None and self.transport.exists(ready_path):
                return False
            made = self.transport.run(["mkdir", self.path], check=False)
            if (
                made.returncode == 0
                and ready_path is not None
                and self.transport.exists(ready_path)
            ):
                # The holder finished and released between our look and our mkdir: what
                # it made is there, so this lock is not needed (or it would be made twice).
                self.transport.run(["rmdir", "--", self.path], check=False)
                return False
            if made.returncode == 0:
                record = {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "time": time.time(),
                    "id": self.id,
                }
                self.transport.write_text(f"{self.path}/owner", json.dumps(record))
                self._held = True
                self._start_heartbeat()
                return True
            if not self.transport.exists(self.path):
                if self.transport.exists(posixpath.dirname(self.path)):
                    continue  # released between our mkdir and this check
                raise ConfigurationError(
                    f"Cannot create the lock {self.path} on {self.transport.description}: "
                    f"{made.stderr.strip() or 'mkdir failed'}. Check that its parent exists "
                    "and is writable."
                )
            age = self.age()
            if age is not None and age > self.policy.stale_after:
                self._break(age)
                continue
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"Gave up after {self.policy.timeout:g} s waiting for {self.path} on "
                    f"{self.transport.description}, held by {self.owner() or 'an unknown owner'}"
                    f" (last touched {age if age is not None else '?'} s ago). If that process "
                    f"is gone, remove the directory (`rm -r {shlex.quote(self.path)}`); a lock "
                    f"untouched for {self.policy.stale_after:g} s is broken automatically."
                )
            if not waited:
                logger.info("waiting for %s (held by %s)", self.path, self.owner())
                waited = True
            self._sleep(self.policy.poll)

    def _break(self, age: float) -> None:
        logger.warning(
            "breaking the stale lock %s (untouched for %.0f s, held by %s)",
            self.path,
            age,
            self.owner(),
        )
        # Move it aside only if it is still stale, then delete it: a waiter that
        # lost the race finds nothing to move and just tries mkdir again.
        aside = f"{self.path}.stale-{secrets.token_hex(4)}"
        script = (
            'age=$(( $(date +%s) - $(stat -c %Y "$1") )) && [ "$age" -gt "$3" ] '
            '&& mv -- "$1" "$2" && rm -rf -- "$2"'
        )
        stale = str(int(self.policy.stale_after))
        self.transport.run(["sh", "-c", script, "sh", self.path, aside, stale], check=False)

    def _start_heartbeat(self) -> None:
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.policy.heartbeat):
                try:
                    self.transport.run(["touch", "-c", self.path], check=False)
                except Exception:
                    logger.debug("lock heartbeat failed", exc_info=True)

        self._beat = threading.Thread(target=beat, name=f"lock-heartbeat {self.path}", daemon=True)
        self._beat.start()

    def release(self) -> None:
        """Give the lock up (only if this object still holds it)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if not self._held:
            return
        self._held = False
        if self.owner().get("id") == self.id:
            self.transport.run(["rm", "-rf", "--", self.path], check=False)
        else:
            logger.warning("lock %s was taken over by another process meanwhile", self.path)
