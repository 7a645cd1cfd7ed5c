"""Where the token PIN comes from: an environment variable, a private file, or a prompt.

Never a command-line argument (visible to every local user in ``ps``) and never logged:
the PIN travels inside ``Pin``, whose ``repr`` and ``str`` hide it, and it reaches the
module only inside the gated login call.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from trusted_ledger.errors import PinSourceError

PIN_BYTES_MAX = 256
_FILE_MODE_PRIVATE_MASK = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True)
class Pin:
    """A PIN that cannot leak through logging or tracebacks by accident."""

    _value: str

    def reveal(self) -> str:
        """The PIN itself: call only where it is handed to the module."""
        return self._value

    def __repr__(self) -> str:
        return "Pin(***)"

    __str__ = __repr__


def pin_from_env(variable: str) -> Pin:
    value = os.environ.get(variable)
    if not value:
        raise PinSourceError(
            f"PIN environment variable {variable} is not set or empty",
            hint=f"export {variable}=... in the service's environment file",
        )
    return _checked(value, f"${variable}")


def pin_from_file(path: Path) -> Pin:
    """Read a PIN file, refusing it unless only its owner can read or write it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PinSourceError(f"PIN file {path} does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise PinSourceError(f"PIN file {path} is not a regular file")
    if info.st_mode & _FILE_MODE_PRIVATE_MASK:
        raise PinSourceError(
            f"PIN file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o})",
            hint=f"chmod 600 {path}",
        )
    text = path.read_text(encoding="utf-8")
    # One trailing newline is how editors and `echo` write files; it is not part of the PIN.
    return _checked(text.removesuffix("\n"), str(path))


def pin_from_prompt(prompt: str = "Token PIN: ") -> Pin:
    if not sys.stdin.isatty():
        raise PinSourceError(
            "no terminal to prompt for the PIN",
            hint="use --pin-env VAR or --pin-file PATH in scripts and services",
        )
    return _checked(getpass.getpass(prompt), "prompt")


def pin_from_spec(spec: str) -> Pin:
    """Resolve ``env:VAR``, ``file:PATH`` or ``prompt``."""
    kind, _, argument = spec.partition(":")
    if kind == "env" and argument:
        return pin_from_env(argument)
    if kind == "file" and argument:
        return pin_from_file(Path(argument))
    if kind == "prompt" and not argument:
        return pin_from_prompt()
    raise PinSourceError(
        f"unknown PIN source {spec!r}", hint="use env:VARIABLE, file:PATH or prompt"
    )


def _checked(value: str, origin: str) -> Pin:
    if not value:
        raise PinSourceError(f"PIN from {origin} is empty")
    if len(value.encode("utf-8")) > PIN_BYTES_MAX:
        raise PinSourceError(f"PIN from {origin} is longer than {PIN_BYTES_MAX} bytes")
    return Pin(value)
