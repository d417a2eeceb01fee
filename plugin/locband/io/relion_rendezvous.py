"""The files through which the two half-set calls of one hook iteration meet (RELION refinement hook).

Folder ``<job>/locband_extrec/<out>_itNNN_<class|body>NNN/`` holds, per half ``h``:

* ``half<h>.mrc``: the half's unregularised map;
* ``half<h>.json``: its record, written after the map (what identifies the run, and the map's
  size and mtime);
* ``half<h>.failed``: a failure marker with the reason, written by a call that failed.

Every file is written atomically; nothing is ever locked. What counts as current and how long to
wait is the adapter's policy (:mod:`locband.adapters.relion_extrec.rendezvous`); this module only
reads and writes. The hook's log, one JSON object per call, is ``<job>/locband_extrec.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.errors import InputFileError
from locband.io.atomic import atomic_write_text, ensure_output_dir
from locband.io.mrc import read_map, write_map
from locband.io.relion_star import HookName

__all__ = ["RENDEZVOUS_DIR", "HOOK_LOG_NAME", "PairFolder", "file_stamp"]

#: folder (inside the refinement's folder) where the two half calls meet
RENDEZVOUS_DIR = "locband_extrec"
#: the hook's log in the refinement's folder: one JSON object per call
HOOK_LOG_NAME = "locband_extrec.jsonl"


def file_stamp(path: str | os.PathLike[str]) -> dict[str, int]:
    """Size and modification time (ns) of a file: what tells one version of it from the next.

    Raises
    ------
    OSError
        The file is missing or cannot be looked at.
    """
    st = os.stat(path)
    return {"mtime_ns": st.st_mtime_ns, "size": st.st_size}


class PairFolder:
    """The meeting folder of one iteration and class/body: paths, and reading and writing its files."""

    def __init__(self, job_dir: Path, key: str) -> None:
        self.base = job_dir / RENDEZVOUS_DIR
        self.folder = self.base / key

    @classmethod
    def of(cls, job_dir: Path, name: HookName, *, iteration: int | None = None) -> PairFolder:
        """The folder of a call (of another ``iteration`` of the same class/body if given)."""
        it = name.iteration if iteration is None else iteration
        return cls(job_dir, f"{Path(name.out_root).name}_it{it:03d}_{name.kind}{name.index:03d}")

    def map_path(self, half: int) -> Path:
        """``half<h>.mrc``."""
        return self.folder / f"half{half}.mrc"

    def record_path(self, half: int) -> Path:
        """``half<h>.json``."""
        return self.folder / f"half{half}.json"

    def failure_path(self, half: int) -> Path:
        """``half<h>.failed``."""
        return self.folder / f"half{half}.failed"

    def begin(self, half: int) -> None:
        """Create the folder and remove this half's record and failure marker of an earlier call."""
        ensure_output_dir(self.folder)
        for f in (self.record_path(half), self.failure_path(half)):
            f.unlink(missing_ok=True)

    def publish(self, half: int, volume: npt.NDArray[np.float32], *, pixel_size_angstrom: float,
                record: dict[str, Any]) -> None:
        """Write this half's map, then its record with the map's stamp (both atomically)."""
        write_map(self.map_path(half), volume, pixel_size_angstrom=pixel_size_angstrom)
        record = {**record, "map_stamp": file_stamp(self.map_path(half))}
        atomic_write_text(self.record_path(half), json.dumps(record) + "\n")

    def write_failure(self, half: int, record: dict[str, Any]) -> None:
        """Leave a failure marker for the other half (best effort: a failure must not hide the first one)."""
        with contextlib.suppress(OSError, InputFileError):
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.failure_path(half), json.dumps(record) + "\n")

    @staticmethod
    def read_record(path: Path) -> dict[str, Any] | None:
        """A record or failure marker, or None if there is none or it cannot be read (being replaced)."""
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def read_map_if_current(self, half: int, stamp: object) -> npt.NDArray[np.float32] | None:
        """The half's map if it still has ``stamp`` (size and mtime), else None (replaced meanwhile)."""
        path = self.map_path(half)
        try:
            if file_stamp(path) == stamp:
                return read_map(path, what=f"half-{half} map").data
        except (OSError, InputFileError):
            pass
        return None

    def remove_iterations_before(self, name: HookName, half: int, first_kept: int) -> None:
        """Remove this half's files of iterations before ``first_kept`` (same class/body), and empty folders."""
        stem, suffix = Path(name.out_root).name, f"_{name.kind}{name.index:03d}"
        for folder in self.base.glob(f"{stem}_it*{suffix}"):
            try:
                it = int(folder.name[len(stem) + 3: -len(suffix)])
            except ValueError:
                continue
            if it >= first_kept:
                continue
            old = PairFolder(folder.parent.parent, folder.name)
            for f in (old.map_path(half), old.record_path(half), old.failure_path(half)):
                f.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
