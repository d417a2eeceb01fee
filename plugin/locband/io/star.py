"""STAR files (through ``starfile``): one reader, with messages that name the file and what it is."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from locband.errors import InputFileError

__all__ = ["read_star", "as_mapping"]


def read_star(path: str | os.PathLike[str], *, what: str, allow_empty: bool = False) -> dict[str, Any]:
    """All data blocks of a STAR file, by name (a dict for a list block, a DataFrame for a loop).

    Parameters
    ----------
    path : path-like
        The STAR file.
    what : str
        How to call the file in messages ("model STAR file", "RELION pipeline", ...).
    allow_empty : bool
        Accept a file without data blocks (a fresh pipeline); otherwise that is an error.

    Raises
    ------
    InputFileError
        Missing, not a file, not readable as STAR, or (unless allowed) without a data block.
    """
    # starfile imports pandas (half a second): only the commands that read STAR files pay for it
    import starfile

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{what} {str(p)!r} does not exist" if not p.exists() else
                             f"{what} {str(p)!r} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # starfile warns on empty blocks, which RELION writes
            blocks = starfile.read(p, always_dict=True)
    except Exception as exc:  # starfile/pandas raise many types on malformed text
        raise InputFileError(f"{what} {str(p)!r} is not a readable STAR file: {exc}") from None
    if not isinstance(blocks, dict) or (not blocks and not allow_empty):
        raise InputFileError(f"{what} {str(p)!r} holds no STAR data block")
    return dict(blocks)


def as_mapping(block: Any) -> dict[str, Any]:
    """A STAR block as a label -> value mapping (a list block, or the first row of a loop)."""
    if isinstance(block, dict):
        return block
    if hasattr(block, "columns") and len(block) >= 1:
        return {str(k): block[k].iloc[0] for k in block.columns}
    return {}
