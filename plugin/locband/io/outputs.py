"""Writing a set of output files all-or-nothing, and telling a complete set from a broken one.

A run's outputs (maps, ``summary.json``, the report, host files) form one *set*. Writing it:

1. **Before any work** (:meth:`OutputSet.check`): no output name may resolve to an input
   (same path, a symbolic link or a hard link to it), no output name may be taken by a folder
   or a special file, and the output folder must be writable (or creatable).
2. **Write** (:meth:`OutputSet.commit`): temporary files left by a killed run are removed;
   every file is written to a temporary name beside its target (``.<name>.<random>.tmp``) and
   its SHA-256 is taken; the manifest ``locband_manifest.json`` (run id, each file's size and
   SHA-256) is written to a temporary name too. A failure here (a full disk, a write error)
   removes the temporary files and leaves the folder exactly as it was.
3. **Replace**, with SIGINT/SIGTERM/SIGHUP held (:func:`locband._signals.deferred`): the old
   manifest is removed, the files are renamed onto their names, names of this kind of set that
   the new run does not write (a previous run's report after ``--no-report``) are removed, and
   the new manifest is renamed into place last.

So a folder holds the complete old set, the complete new set, or, when a run was killed with
SIGKILL (or the machine went down) inside step 3, files without a manifest or with files that
do not match it. :func:`inspect_output_set` tells which, and everything in locband that reads an
output folder back checks it first (:func:`require_complete_set`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locband import __version__
from locband._signals import deferred
from locband.errors import OutputFileError
from locband.io.atomic import check_output_dir, ensure_output_dir

__all__ = ["MANIFEST_NAME", "OutputFileError", "OutputSet", "SetState", "Writer", "inspect_output_set",
           "require_complete_set", "same_file"]

#: the manifest, written last: its presence and content mark a complete set
MANIFEST_NAME = "locband_manifest.json"
_MANIFEST_FORMAT = 1

Writer = Callable[[Path], object]


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True if ``a`` and ``b`` name the same file: the same path once links are resolved, or one inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _temporary_beside(target: Path) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputFileError(f"cannot write {str(target)!r}: {_reason(exc)}") from None
    os.close(fd)
    return Path(tmp)


class OutputSet:
    """Files written together into one folder: checked before any work, committed all-or-nothing.

    Parameters
    ----------
    out_dir : path-like
        The output folder (created by :meth:`create` or :meth:`commit`, not before).
    inputs : mapping of str to path-like or None
        What the run reads (``{"half-map 1": path, "mask": None, ...}``): no output may resolve
        to one of them. The keys name the input in messages.
    owned : iterable of str
        Every name this kind of set may hold (optional outputs included). Names not written by
        this run are removed when it commits, so that nothing of an earlier run stays beside
        the new set; all of them are checked against the inputs.
    also_writes : iterable of str
        Names written into ``out_dir`` outside the set (a log, RELION's exit files): checked
        against the inputs only.
    manifest : bool
        Write :data:`MANIFEST_NAME` (default). Without it the set is still all-or-nothing
        while the process lives, but a kill in the middle of the renames cannot be recognised.
    extend : bool
        Add files to the complete set already in ``out_dir`` (same run id), as ``locband
        report`` does with a redrawn report; the folder must hold a complete set.

    Examples
    --------
    >>> outs = OutputSet(out_dir, inputs={"half-map 1": h1}, owned=["filtered.mrc"])  # doctest: +SKIP
    >>> outs.check()                                                # before any work # doctest: +SKIP
    >>> outs.add("filtered.mrc", lambda p: write_map(p, vol, pixel_size_angstrom=1.0))  # doctest: +SKIP
    >>> outs.commit()                                               # doctest: +SKIP
    """

    def __init__(self, out_dir: str | os.PathLike[str], *,
                 inputs: Mapping[str, str | os.PathLike[str] | None] | None = None,
                 owned: Iterable[str] = (), also_writes: Iterable[str] = (), manifest: bool = True,
                 extend: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.inputs = {k: Path(v) for k, v in (inputs or {}).items() if v is not None}
        self.owned = list(dict.fromkeys(owned))
        self.also_writes = list(dict.fromkeys(also_writes))
        self.manifest = manifest
        self.extend = extend
        self.run_id = uuid.uuid4().hex
        self._writers: dict[str, Writer] = {}

    # -- before any work ----------------------------------------------------------------
    def _names(self) -> list[str]:
        names = [*self._writers, *self.owned, *self.also_writes]
        if self.manifest:
            names.append(MANIFEST_NAME)
        return list(dict.fromkeys(names))

    def check(self) -> None:
        """Refuse, before any work, outputs that would replace an input or whose name is taken.

        Raises
        ------
        OutputFileError
            An output resolves to an input (both are named), a folder or special file holds an
            output name, or the output folder cannot be written or created.
        """
        for name in self._names():
            target = self.out_dir / name
            for what, path in self.inputs.items():
                if same_file(target, path):
                    raise OutputFileError(
                        f"output {str(target)!r} would overwrite {what} {str(path)!r} (the same file): locband "
                        "never writes over its inputs; choose another output folder")
        check_output_dir(self.out_dir)
        for name in [*self._writers, *self.owned, MANIFEST_NAME]:
            target = self.out_dir / name
            try:
                mode = target.lstat().st_mode
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise OutputFileError(f"cannot write {str(target)!r}: {_reason(exc)}") from None
            if stat.S_ISDIR(mode):
                raise OutputFileError(f"cannot write {str(target)!r}: a folder of that name is in the way; "
                                      "remove it or choose another output folder")
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                raise OutputFileError(f"cannot write {str(target)!r}: it exists and is not a regular file; "
                                      "remove it or choose another output folder")

    def create(self) -> Path:
        """Create the output folder (call once the inputs are known to be good); returns it."""
        return ensure_output_dir(self.out_dir)

    # -- building the set ------------------------------------------------------------------
    def add(self, name: str, writer: Writer) -> Path:
        """Register ``writer(tmp_path)`` for the file ``name``; returns the final path."""
        if name == MANIFEST_NAME or "/" in name or name in ("", ".", ".."):
            raise ValueError(f"{name!r} cannot be the name of an output file")
        self._writers[name] = writer
        return self.out_dir / name

    @property
    def names(self) -> list[str]:
        """Names registered so far, in the order they will be written."""
        return list(self._writers)

    # -- writing ---------------------------------------------------------------------------
    def commit(self) -> list[Path]:
        """Check, write everything to temporary files, then replace the old set in one step.

        Returns
        -------
        list of Path
            The files written (the manifest not included).

        Raises
        ------
        OutputFileError
            Any check of :meth:`check` fails, or a file cannot be written or renamed (the message
            names the file and the reason of the operating system).
        """
        self.check()
        out = self.create()
        self._remove_stale_temporaries()
        previous = self._previous_manifest() if self.extend else None
        done: list[tuple[Path, Path]] = []
        try:
            files: dict[str, dict[str, Any]] = dict(previous["files"]) if previous else {}
            for name, writer in self._writers.items():
                target = out / name
                tmp = _temporary_beside(target)
                done.append((tmp, target))
                self._write_temporary(writer, tmp, target)
                files[name] = {"size": tmp.stat().st_size, "sha256": _sha256(tmp)}
            if self.manifest:
                target = out / MANIFEST_NAME
                tmp = _temporary_beside(target)
                done.append((tmp, target))
                run_id = previous["run_id"] if previous else self.run_id
                self._write_temporary(lambda p: p.write_text(_manifest_text(run_id, files), encoding="utf-8"),
                                      tmp, target)
        except BaseException:
            with deferred():
                _unlink_all(tmp for tmp, _ in done)
            raise
        self._replace(done)
        return [target for _, target in done if target.name != MANIFEST_NAME]

    def _write_temporary(self, writer: Writer, tmp: Path, target: Path) -> None:
        try:
            writer(tmp)
            os.chmod(tmp, 0o644)
        except OSError as exc:
            raise OutputFileError(f"cannot write {str(target)!r}: {_reason(exc)}") from None

    def _replace(self, done: list[tuple[Path, Path]]) -> None:
        """Swap the old set for the new one; signals are held for these few system calls."""
        manifest = self.out_dir / MANIFEST_NAME
        with deferred():
            current: Path = manifest
            try:
                if self.manifest:
                    manifest.unlink(missing_ok=True)
                # the files, then the removal of names this run does not write, the manifest last
                # (commit() put it at the end of `done`)
                unwritten = [] if self.extend else self._unwritten({t.name for _, t in done})
                for i, (tmp, target) in enumerate(done):
                    if target == manifest:
                        for current in unwritten:
                            current.unlink(missing_ok=True)
                    current = target
                    os.replace(tmp, target)
                    done[i] = (target, target)
                if not self.manifest:
                    for current in unwritten:
                        current.unlink(missing_ok=True)
            except OSError as exc:
                _unlink_all(tmp for tmp, target in done if tmp != target)
                state = (f"; {str(self.out_dir)!r} now holds an incomplete set (no {MANIFEST_NAME}): run again"
                         if self.manifest else "")
                raise OutputFileError(f"cannot replace {str(current)!r}: {_reason(exc)}{state}") from None

    def _unwritten(self, written: set[str]) -> list[Path]:
        """Files under names of this set that the run does not write (an earlier run's)."""
        paths = [self.out_dir / name for name in self.owned if name not in written]
        return [p for p in paths if p.is_file() or p.is_symlink()]

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files a killed run left under this set's names (never an input)."""
        names = [*self._writers, *self.owned, MANIFEST_NAME]
        pattern = re.compile(r"^\.+(?:" + "|".join(re.escape(n) for n in names) + r")\..+\.tmp$")
        try:
            entries = list(os.scandir(self.out_dir))
        except OSError:
            return
        for entry in entries:
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
                if any(same_file(entry.path, p) for p in self.inputs.values()):
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _previous_manifest(self) -> dict[str, Any]:
        # sizes only: the files kept keep their recorded SHA-256, so a changed one still shows
        state = inspect_output_set(self.out_dir, verify=False, ignore=self._writers)
        if not state.complete or state.manifest is None:
            raise OutputFileError(f"cannot add to {str(self.out_dir)!r}: {state.reason}")
        return state.manifest


def _unlink_all(paths: Iterable[Path]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()


def _manifest_text(run_id: str, files: dict[str, dict[str, Any]]) -> str:
    return json.dumps({"locband_manifest": _MANIFEST_FORMAT, "run_id": run_id, "locband_version": __version__,
                       "written_unix": round(time.time(), 3), "files": files}, indent=2) + "\n"


# -- reading a folder back -------------------------------------------------------------------

@dataclass(frozen=True)
class SetState:
    """What an output folder holds.

    Attributes
    ----------
    complete : bool
        A manifest is there and every file it lists has the size and SHA-256 it lists.
    reason : str or None
        Why the set is not complete (None when it is).
    manifest : dict or None
        The manifest, when one could be read.
    """

    complete: bool
    reason: str | None = None
    manifest: dict[str, Any] | None = None

    @property
    def run_id(self) -> str | None:
        """The run id of the manifest, if any."""
        return None if self.manifest is None else str(self.manifest.get("run_id"))


def inspect_output_set(out_dir: str | os.PathLike[str], *, verify: bool = True,
                       ignore: Iterable[str] = ()) -> SetState:
    """Tell whether ``out_dir`` holds a complete output set.

    Parameters
    ----------
    out_dir : path-like
        The output folder.
    verify : bool
        Also compare every file with the size and SHA-256 in the manifest (default); otherwise
        only the presence and size of the files are checked.
    ignore : iterable of str
        Files of the set not to check (those about to be replaced, e.g. a report being redrawn).
    """
    folder = Path(out_dir)
    mpath = folder / MANIFEST_NAME
    if not folder.is_dir():
        return SetState(False, "it does not exist or is not a folder")
    if not mpath.is_file():
        return SetState(False, f"it holds no {MANIFEST_NAME}: the run that wrote it was interrupted while "
                               "replacing its files (or it was written by a locband older than this one)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not a table")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return SetState(False, f"{str(mpath)!r} is not a readable locband manifest ({exc})")
    skip = set(ignore)
    for name, entry in files.items():
        if name in skip:
            continue
        path = folder / name
        try:
            if not path.is_file():
                raise FileNotFoundError(name)
            size = path.stat().st_size
        except OSError:
            return SetState(False, f"{name} is listed in {MANIFEST_NAME} (run {manifest.get('run_id')}) but is "
                                   "missing or not a file", manifest)
        if size != entry.get("size") or (verify and _sha256(path) != entry.get("sha256")):
            return SetState(False, f"{name} is not the file run {manifest.get('run_id')} wrote (it was replaced "
                                   "afterwards, or a run was interrupted while replacing it)", manifest)
    return SetState(True, None, manifest)


def require_complete_set(out_dir: str | os.PathLike[str], *, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """Return the manifest of the complete set in ``out_dir`` (files in ``ignore`` not checked).

    Raises
    ------
    OutputFileError
        The folder holds an incomplete set; the message says why and to run again.
    """
    state = inspect_output_set(out_dir, ignore=ignore)
    if not state.complete or state.manifest is None:
        raise OutputFileError(f"output folder {str(out_dir)!r} holds an incomplete set of outputs: {state.reason}; "
                              "run locband again to write a complete set")
    return state.manifest
