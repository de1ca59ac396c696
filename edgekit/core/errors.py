"""The one exception hierarchy of edgekit.

Every error a user can cause (bad name, bad file, bad shape, missing backend) is an
``EdgekitError``; the CLI prints its message on one line and exits non-zero. Anything
else escaping is a bug in edgekit and keeps its traceback.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose."""


class UnknownNameError(EdgekitError, KeyError):
    """A name looked up in a registry does not exist (the message lists close names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(EdgekitError, ValueError):
    """An argument, shape or option is not acceptable."""


class OutputError(EdgekitError):
    """An output path cannot be written: no writable directory, or a file where a folder is."""


class DataError(EdgekitError):
    """A data set (image folder, numpy file, embedded set) is missing or unreadable."""


class CheckpointError(EdgekitError):
    """A checkpoint or weights file is missing, corrupt or does not fit the model."""


class FormatError(EdgekitError):
    """A compressed model file is truncated, corrupt or exceeds a declared limit."""


class MissingBackendError(EdgekitError, ImportError):
    """An optional backend is not installed; the message names the extra to install."""


class ExportError(EdgekitError):
    """A model cannot be exported to the requested format or target."""


class UnsupportedOpError(ExportError):
    """The target runtime cannot run an op of the model (message names op, layer, target)."""


class VerificationError(EdgekitError):
    """A deployed artifact does not match the model it was exported from."""


class BenchError(EdgekitError):
    """A benchmark could not run (runtime failure, bad model file, timeout)."""


class RemoteError(BenchError):
    """A remote (SSH) benchmark failed: connection, host key, copy or remote run."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its repr when the message is empty): what a
    one-line CLI error or a wrapped third-party failure shows."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
