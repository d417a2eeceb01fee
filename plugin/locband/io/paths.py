"""Questions about the file system that the layers above ask without touching it themselves."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["is_file", "is_dir", "exists", "same_path", "console_script", "remove"]


def is_file(path: str | os.PathLike[str] | None) -> bool:
    """True if ``path`` is given and names a regular file (after links)."""
    return path is not None and str(path) != "" and Path(path).is_file()


def is_dir(path: str | os.PathLike[str] | None) -> bool:
    """True if ``path`` is given and names a folder (after links)."""
    return path is not None and str(path) != "" and Path(path).is_dir()


def exists(path: str | os.PathLike[str]) -> bool:
    """True if anything (a file, a folder, a dangling link) is at ``path``."""
    p = Path(path)
    return p.exists() or p.is_symlink()


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """The same path once made absolute and links resolved (the files need not exist)."""
    return os.path.realpath(a) == os.path.realpath(b)


def console_script(name: str) -> str | None:
    """An executable ``name`` beside the running Python (its environment's ``bin``), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def remove(path: str | os.PathLike[str]) -> bool:
    """Remove the file at ``path``; True if there was one, False if there was nothing.

    Raises
    ------
    OSError
        It exists but cannot be removed (a folder, a missing permission).
    """
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    return True
