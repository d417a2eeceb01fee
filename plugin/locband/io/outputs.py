"""Writing a set of output files all-or-nothing.

Every file goes to a temporary name in the output folder first; only when all of them are
complete are they renamed onto their final names. A failure part-way removes the temporary
files, so no partial output is left behind and earlier outputs stay untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from locband.io.errors import InputFileError

__all__ = ["OutputSet"]


class OutputSet:
    """Collect writers for several files, then commit them together.

    Examples
    --------
    >>> outs = OutputSet(out_dir)                                   # doctest: +SKIP
    >>> outs.add("filtered.mrc", lambda p: write_map(p, vol, pixel_size_angstrom=1.0))  # doctest: +SKIP
    >>> outs.commit()                                               # doctest: +SKIP
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self._writers: list[tuple[str, Callable[[Path], object]]] = []

    def add(self, name: str, writer: Callable[[Path], object]) -> Path:
        """Register ``writer(tmp_path)`` for the file ``name``; returns the final path."""
        self._writers.append((name, writer))
        return self.out_dir / name

    def commit(self) -> list[Path]:
        """Write everything to temporary files, then rename them all into place."""
        done: list[tuple[Path, Path]] = []
        try:
            for name, writer in self._writers:
                target = self.out_dir / name
                tmp = _temporary_beside(target)
                done.append((tmp, target))
                writer(tmp)
        except BaseException:
            for tmp, _ in done:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise
        for tmp, target in done:
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        return [t for _, t in done]


def _temporary_beside(target: Path) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputFileError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    return Path(tmp)
