"""Named secrets the server holds for outbound calls (header values of `http`
steps, the keys that sign notifications).

Configured when the server starts, never through the API:
`--secret NAME=env:VAR` (the value of an environment variable) or
`--secret NAME=file:PATH` (a file's content, trailing newline removed), or a
secrets file of such `NAME=SOURCE` lines (`--secrets-file`). Workflows name a
secret; its value is used only inside the outbound request and is never
written to events, stored definitions or error messages (`redact`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
REDACTED = "[redacted]"


class SecretError(ValueError):
    """A secret option that cannot be used (one line, for the command line)."""


class Secrets:
    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    @classmethod
    def from_options(
        cls,
        options: Iterable[str],
        files: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> Secrets:
        """Reads every `NAME=env:VAR` / `NAME=file:PATH` option and secrets file
        now, so that a missing one stops the server at start, not a run later."""
        env = os.environ if environ is None else environ
        lines = list(options)
        for file in files:
            try:
                text = Path(file).read_text()
            except OSError as error:
                raise SecretError(f"cannot read secrets file {file}: {error.strerror}") from None
            lines += [
                line.strip()
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
        values: dict[str, str] = {}
        for option in lines:
            name, value = _parse(option, env)
            values[name] = value
        return cls(values)

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._values)

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced (longest first)."""
        for value in sorted(self._values.values(), key=len, reverse=True):
            if value:
                text = text.replace(value, REDACTED)
        return text

    def contains_any(self, text: str) -> bool:
        return any(value and value in text for value in self._values.values())


def _parse(option: str, env: Mapping[str, str]) -> tuple[str, str]:
    name, sep, source = option.partition("=")
    name = name.strip()
    if not sep or not NAME.fullmatch(name):
        raise SecretError(
            f"secret {option.split('=', 1)[0]!r}: expected NAME=env:VAR or NAME=file:PATH "
            "(NAME: [A-Za-z0-9_.-]{1,128})"
        )
    kind, _, where = source.strip().partition(":")
    if kind == "env":
        if where not in env:
            raise SecretError(f"secret {name!r}: environment variable {where!r} is not set")
        return name, env[where]
    if kind == "file":
        try:
            return name, Path(where).read_text().rstrip("\n")
        except OSError as error:
            raise SecretError(f"secret {name!r}: cannot read {where}: {error.strerror}") from None
    raise SecretError(f"secret {name!r}: the source must be env:VAR or file:PATH")
