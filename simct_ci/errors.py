"""Errors a user can cause. Each carries the exit code the CLI returns and a one-line message for a human.

Anything that is not a SimctError is a bug in simct-action and is allowed to show a traceback.
"""

from __future__ import annotations

EXIT_CONSISTENT = 0
EXIT_INCONSISTENT = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3


class SimctError(Exception):
    """Base of every user-facing error; str(error) is the whole message."""

    exit_code = EXIT_USAGE


class ConfigError(SimctError):
    """The config file, a file it names, or the environment it needs is wrong. The message names the key."""


class DataError(SimctError):
    """A prompts or recorded-responses file cannot be read. The message names the file and line."""


class ModelFileError(SimctError):
    """The bundled LightGBM model or its card is missing, corrupted or made for other features."""


class EndpointError(SimctError):
    """An endpoint failed for good after its retries (raised per request; collection records it)."""
