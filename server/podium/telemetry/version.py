"""The instrumentation scope's version: the installed distribution's."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("podium")
except PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"
