"""Questions about the file system that the layers above ask without touching it themselves."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["is_file", "is_dir", "exists", "same_path", "resolved", "console_script", "remove", "temporary_folder",
           "is_executable"]


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


def resolved(path: str | os.PathLike[str]) -> Path:
    """The absolute path with every link resolved (the file need not exist)."""
    return Path(path).resolve()


def is_executable(path: str | os.PathLike[str]) -> bool:
    """True for a file this process may run."""
    return Path(path).is_file() and os.access(path, os.X_OK)


@contextlib.contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A new private folder, removed with everything in it when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


def console_script(name: str) -> str | None:
    """An executable ``name`` beside the running Python (its environment's ``bin``), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if is_executable(beside):
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
