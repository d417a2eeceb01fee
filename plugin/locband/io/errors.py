"""The old home of :class:`~locband.errors.InputFileError`; the errors live in :mod:`locband.errors`."""

from __future__ import annotations

from locband.errors import InputFileError, OutputFileError

__all__ = ["InputFileError", "OutputFileError"]
