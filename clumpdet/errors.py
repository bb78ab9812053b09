"""Exception hierarchy.

Every error a user can cause by handing clumpdet a bad file, value or config derives from
:class:`ClumpdetError`. The CLI turns these into one line on stderr and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


class ClumpdetError(Exception):
    """Base class for all user-facing clumpdet errors."""


class InputError(ClumpdetError, ValueError):
    """A user-supplied file or array is unreadable or inconsistent.

    Parameters
    ----------
    path : str or path-like or None
        The offending file, named first in the message.
    problem : str
        What is wrong and, where possible, what was expected.
    """

    def __init__(self, path: str | PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(ClumpdetError, ValueError):
    """A configuration value or key is invalid (unknown key, wrong type, bad range)."""


class RegistryError(ClumpdetError, KeyError):
    """A name was looked up in a registry that does not hold it."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class CheckpointError(InputError):
    """A checkpoint is missing, corrupt or of another kind."""


class NoDetectionsWarning(UserWarning):
    """Raised as a warning when a detector or baseline finds nothing in an image set."""
