"""Atomic output: write to a temporary file in the target folder, then rename.

A host program that polls for an output never sees a half-written file, and a crash leaves
the previous file (or none) in place, plus no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from locband.errors import InputFileError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_dir", "ensure_output_dir"]


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Check, without creating anything, that ``path`` is or can become a writable folder.

    For an existing ``path``: a folder that this process may write. Otherwise the nearest
    existing parent must be such a folder. (Root may write anywhere ``os.access`` says so;
    a read-only file system still fails later, when the folder is created or written.)

    Raises
    ------
    InputFileError
        ``path`` is a file, or a folder that cannot be written or created.
    """
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise InputFileError(f"output folder {str(p)!r} exists but is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise InputFileError(f"output folder {str(p)!r} is not writable")
        return p
    parent = p.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputFileError(f"output folder {str(p)!r} cannot be created: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputFileError(f"output folder {str(p)!r} cannot be created: {str(parent)!r} is not writable")
    return p


def ensure_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if needed and check that it is a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputFileError(f"output folder {str(p)!r} exists but is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"output folder {str(p)!r} cannot be created: {exc.strerror or exc}") from None
    if not p.is_dir():
        raise InputFileError(f"output folder {str(p)!r} exists but is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputFileError(f"output folder {str(p)!r} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    except OSError as exc:
        raise InputFileError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))
