"""The error type for bad input files and parameters (exit 1 with a one-line message)."""

from __future__ import annotations

__all__ = ["InputFileError"]


class InputFileError(ValueError):
    """A file or user-supplied parameter is unusable.

    The message names the file (or parameter), what was expected and what was found. The CLI
    prints it on one line and exits 1.
    """
