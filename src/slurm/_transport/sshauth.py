"""Answering an SSH server's keyboard-interactive prompts (one-time codes, second factors).

Many clusters ask for a one-time code after the key (``AuthenticationMethods
publickey,keyboard-interactive`` with a TOTP or Duo PAM module). paramiko asks
such questions through a handler; this module supplies the handler:

- :class:`AuthPrompt` is one question (host, prompt text, whether the answer
  may be echoed);
- an :data:`InteractiveAuth` is any callable ``(AuthPrompt) -> str`` the user
  gives (``Cluster(..., interactive_auth=...)``), e.g. one that computes a TOTP
  code or reads it from a password manager;
- without one, :func:`ask_on_terminal` asks on the controlling terminal, and
  says clearly what to do when there is none (a batch job, CI).

:class:`AnsweringTransport` is the paramiko transport that uses it both for a
second factor after a key and for servers that take keyboard-interactive only.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paramiko

from slurm._terminal import printable
from slurm._transport.hostcert import CERT_SUFFIX as _CERT_SUFFIX
from slurm.errors import AuthenticationError

__all__ = [
    "AnsweringTransport",
    "AuthPrompt",
    "InteractiveAuth",
    "ask_on_terminal",
    "is_password_prompt",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthPrompt:
    """One keyboard-interactive question from an SSH server.

    Attributes:
        host: ``user@host:port`` being logged in to.
        prompt: The server's question, e.g. ``"One-time password (OATH) for `alice': "``.
        echo: Whether the answer may be shown while typed (False for secrets).
        title: The server's title for this round (often empty).
        instructions: The server's instructions for this round (often empty).
    """

    host: str
    prompt: str
    echo: bool
    title: str = ""
    instructions: str = ""


#: A callable answering one prompt, e.g. ``lambda prompt: my_totp_code()``.
InteractiveAuth = Callable[[AuthPrompt], str]


def ask_on_terminal(prompt: AuthPrompt) -> str:
    """Ask ``prompt`` on the controlling terminal (hidden input unless ``echo``).

    Raises:
        AuthenticationError: There is no terminal to ask on (batch job, CI, no tty).
    """
    if not _has_terminal():
        raise AuthenticationError(
            f"{prompt.host} asks {prompt.prompt.strip()!r} (keyboard-interactive login, "
            "usually a one-time code) and there is no terminal to ask on. Run from a "
            "terminal, or give Cluster(..., interactive_auth=callable) (SSHTransport "
            "interactive_auth=) a function that returns the answer."
        )
    # The server's words, shown as they are: no escape sequence of theirs reaches the
    # terminal (it could hide or fake a line of this prompt).
    header = [printable(s.strip()) for s in (prompt.title, prompt.instructions) if s.strip()]
    text = f"[{prompt.host}] {printable(prompt.prompt.lstrip())}"
    if header:
        text = "\n".join([*header, text])
    if not prompt.echo:
        return getpass.getpass(text)  # /dev/tty, else stdin
    try:
        with open("/dev/tty", "r+") as tty:
            tty.write(text)
            tty.flush()
            return tty.readline().rstrip("\n")
    except OSError:
        return input(text)


_PASSWORD_PROMPT = re.compile(r"\s*(?:\S+'s\s+)?password(?:\s+for\s+\S+)?\s*:?\s*", re.IGNORECASE)


def is_password_prompt(text: str) -> bool:
    """Whether ``text`` asks for the account's password, and only that: ``Password:``,
    ``alice@host's password:``, ``Password for alice:``. A prompt for a one-time password,
    a token's PIN or a second factor gets no password (it would hand the password to a
    question that never asked for it).

    Example::

        >>> is_password_prompt("alice@login's password: ")
        True
        >>> is_password_prompt("One-time password (OATH) for `alice': ")
        False
    """
    return _PASSWORD_PROMPT.fullmatch(text) is not None


def _has_terminal() -> bool:
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return sys.stdin.isatty()
    os.close(fd)
    return True


class _Answers:
    """paramiko's handler: each prompt goes to ``answer``; a failure is kept for the caller.

    paramiko calls the handler on its transport thread, where an exception would
    only tear the connection down; the exception is kept and re-raised by
    :meth:`AnsweringTransport.login` instead.
    """

    def __init__(self, host: str, answer: InteractiveAuth, password: str | None) -> None:
        self.host = host
        self.answer = answer
        self.password = password
        self.asked = 0
        self.error: BaseException | None = None

    def __call__(
        self, title: str, instructions: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str]:
        answers = []
        for text, echo in prompts:
            self.asked += 1
            if self.password is not None and not echo and is_password_prompt(text):
                answers.append(self.password)  # a password asked through PAM
                continue
            try:
                reply = self.answer(AuthPrompt(self.host, text, echo, title, instructions))
            except BaseException as exc:
                self.error = exc
                raise
            if not isinstance(reply, str):
                self.error = TypeError(
                    f"interactive_auth returned {type(reply).__name__}, not str, for "
                    f"{text.strip()!r}"
                )
                raise self.error
            answers.append(reply)
        return answers


class AnsweringTransport(paramiko.Transport):
    """A paramiko transport that answers keyboard-interactive prompts through ``answer``.

    paramiko's ``SSHClient`` calls ``auth_interactive_dumb`` when a key was
    accepted and the server wants a second factor; here that call uses
    ``answer`` instead of ``print``/``input``. :meth:`login` does the same for
    servers that accept keyboard-interactive alone.
    """

    def __init__(
        self,
        sock: Any,
        *,
        host: str,
        answer: InteractiveAuth,
        password: str | None,
        check_key: Callable[[paramiko.PKey], None] | None = None,
        prefer_certificates: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(sock, **kwargs)
        self.answers = _Answers(host, answer, password)
        self._check_key = check_key
        self.prefer_certificates = prefer_certificates

    @property
    def preferred_keys(self) -> tuple[str, ...]:
        """The host key algorithms offered, in order; certificate types first when
        ``prefer_certificates`` (a known_hosts CA vouches for the host), as OpenSSH
        orders them when it holds a CA for the host. paramiko offers plain types first."""
        offered: tuple[str, ...] = tuple(super().preferred_keys)
        if not self.prefer_certificates:
            return offered
        certificates = tuple(k for k in offered if k.endswith(_CERT_SUFFIX))
        return certificates + tuple(k for k in offered if not k.endswith(_CERT_SUFFIX))

    def get_remote_server_key(self) -> paramiko.PKey:
        """The server's host key, checked (e.g. against ``@revoked``) first.

        ``SSHClient.connect`` asks for it after the key exchange and before any
        authentication: a refused key is refused before a credential is sent.
        """
        key = super().get_remote_server_key()
        if self._check_key is not None:
            self._check_key(key)
        return key

    def auth_interactive_dumb(
        self,
        username: str,
        handler: Any = None,
        submethods: str = "",
    ) -> list[str]:
        del handler
        logger.info("%s asks for a second factor (keyboard-interactive)", self.answers.host)
        return self._interactive(username, submethods)

    def login(self, username: str) -> bool:
        """Try keyboard-interactive alone (after other methods failed); True if it worked."""
        if not self.is_active() or self.is_authenticated():
            return self.is_authenticated()
        try:
            self._interactive(username, "")
        except paramiko.BadAuthenticationType:
            return False  # the server does not offer keyboard-interactive
        except paramiko.AuthenticationException:
            return False
        return self.is_authenticated()

    def _interactive(self, username: str, submethods: str) -> list[str]:
        try:
            result: list[str] = self.auth_interactive(username, self.answers, submethods)
        except (paramiko.SSHException, EOFError) as exc:
            if self.answers.error is not None:
                raise self.answers.error from exc
            raise
        return result


def transport_factory(
    host: str,
    answer: InteractiveAuth,
    password: str | None,
    check_key: Callable[[paramiko.PKey], None] | None = None,
    *,
    prefer_certificates: bool = False,
) -> Callable[..., AnsweringTransport]:
    """A ``transport_factory`` for ``SSHClient.connect`` that answers prompts with
    ``answer``, runs ``check_key`` on the server's key before authenticating and,
    with ``prefer_certificates``, asks the server for a certificate host key."""

    def make(sock: Any, **kwargs: Any) -> AnsweringTransport:
        return AnsweringTransport(
            sock,
            host=host,
            answer=answer,
            password=password,
            check_key=check_key,
            prefer_certificates=prefer_certificates,
            **kwargs,
        )

    return make
