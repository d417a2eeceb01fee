"""cryoSPARC ``.cs`` datasets and job folders (through cryosparc-tools' ``Dataset``).

A refinement's volume output is a one-row dataset whose fields are ``<slot>/path`` (relative to
the project folder), ``<slot>/shape`` and ``<slot>/psize_A`` for slots such as ``map``,
``map_half_A``, ``map_half_B``, ``mask_refine`` and ``mask_fsc``. This module reads such files
(and finds them in a job folder laid out as cryoSPARC lays it out: ``<project>/J42/J42_008_volume.cs``)
and writes new ones, plus the ``.csg`` group file that cryoSPARC's *Import Result Group* reads.

cryosparc-tools is an optional extra, imported inside the functions.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from locband.errors import InputFileError

__all__ = ["VolumeSlot", "VolumeRecord", "require_cryosparc", "read_volume_cs", "find_volume_cs", "volume_cs_of",
           "record_from_dataset", "volume_dataset", "write_volume_cs", "csg_text", "write_csg", "project_file",
           "download", "upload"]

INSTALL_HINT = "pip install 'locband[cryosparc]'"
_VOLUME_CS = re.compile(r"^(?:cryosparc_P\d+_)?J(\d+)_(\d+)_volume\.cs$")


def require_cryosparc(module: str = "cryosparc.dataset") -> ModuleType:
    """Import a cryosparc-tools module or raise a clear error naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputFileError(f"cryosparc-tools is needed for the cryoSPARC commands but cannot be imported "
                             f"({exc}); install it with: {INSTALL_HINT}") from None


@dataclass(frozen=True)
class VolumeSlot:
    """One slot of a volume dataset row.

    Attributes
    ----------
    path : str
        File path as stored (relative to the project folder in cryoSPARC's own outputs).
    shape : tuple of int
        ``(nz, ny, nx)`` as stored.
    pixel_size_angstrom : float
        ``psize_A``.
    """

    path: str
    shape: tuple[int, ...]
    pixel_size_angstrom: float


@dataclass(frozen=True)
class VolumeRecord:
    """The first row of a volume ``.cs`` dataset, slot by slot.

    Attributes
    ----------
    source : str
        The file it was read from.
    slots : dict of str to VolumeSlot
        Slots that have a non-empty path.
    uid : int
        The row's ``uid``.
    """

    source: str
    slots: dict[str, VolumeSlot] = field(default_factory=dict)
    uid: int = 0


def read_volume_cs(path: str | os.PathLike[str]) -> VolumeRecord:
    """Read the first row of a volume ``.cs`` dataset.

    Parameters
    ----------
    path : str or path-like
        The ``.cs`` file (NUMPY or CSDAT format).

    Returns
    -------
    VolumeRecord

    Raises
    ------
    InputFileError
        Missing or unreadable file, no rows, or no ``<slot>/path`` fields.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"volume dataset {str(p)!r} does not exist")
    ds_mod = require_cryosparc()
    try:
        dset = ds_mod.Dataset.load(str(p))
    except Exception as exc:  # the compiled loader raises several types on bad files
        raise InputFileError(f"volume dataset {str(p)!r} is not a readable cryoSPARC .cs file: {exc}") from None
    return record_from_dataset(dset, source=str(p))


def record_from_dataset(dset: Any, *, source: str) -> VolumeRecord:
    """Turn the first row of a (loaded) volume ``Dataset`` into a :class:`VolumeRecord`."""
    if len(dset) < 1:
        raise InputFileError(f"volume dataset {source!r} has no rows: expected one volume")
    fields = set(dset.fields())
    slots: dict[str, VolumeSlot] = {}
    for name in sorted(fields):
        if not name.endswith("/path"):
            continue
        slot = name[: -len("/path")]
        raw = dset[name][0]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not text:
            continue
        shape = tuple(int(v) for v in dset[f"{slot}/shape"][0]) if f"{slot}/shape" in fields else ()
        psize = float(dset[f"{slot}/psize_A"][0]) if f"{slot}/psize_A" in fields else 0.0
        slots[slot] = VolumeSlot(path=text, shape=shape, pixel_size_angstrom=psize)
    if not slots:
        raise InputFileError(f"volume dataset {source!r} has no '<slot>/path' fields: expected a volume output "
                             f"(found fields {sorted(fields)})")
    uid = int(dset["uid"][0]) if "uid" in fields else 0
    return VolumeRecord(source=source, slots=slots, uid=uid)


def find_volume_cs(job_dir: str | os.PathLike[str]) -> Path:
    """The volume ``.cs`` file of the last iteration in a cryoSPARC job folder.

    Raises
    ------
    InputFileError
        The folder is missing or holds no ``J<n>_<iter>_volume.cs`` file.
    """
    d = Path(job_dir)
    if not d.is_dir():
        raise InputFileError(f"cryoSPARC job folder {str(d)!r} does not exist or is not a folder")
    found = []
    for p in d.iterdir():
        m = _VOLUME_CS.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(2)), p))
    if not found:
        raise InputFileError(f"cryoSPARC job folder {str(d)!r} has no volume output: expected a file named "
                             "like J42_008_volume.cs (a refinement job's folder)")
    return max(found)[1]


def volume_dataset(slots: dict[str, VolumeSlot], *, uid: int | None = None) -> Any:
    """A one-row volume ``Dataset`` with ``path``, ``shape`` and ``psize_A`` for every slot."""
    ds_mod = require_cryosparc()
    spec: list[Any] = []
    for name in slots:
        spec += [(f"{name}/path", "O"), (f"{name}/shape", "<u4", (3,)), (f"{name}/psize_A", "<f4")]
    dset = ds_mod.Dataset.allocate(1, spec)
    if uid is not None:
        dset["uid"] = [uid]
    for name, s in slots.items():
        dset[f"{name}/path"] = [s.path]
        dset[f"{name}/shape"] = [list(s.shape)]
        dset[f"{name}/psize_A"] = [s.pixel_size_angstrom]
    return dset


def write_volume_cs(path: str | os.PathLike[str], slots: dict[str, VolumeSlot], *, uid: int | None = None) -> Path:
    """Write a one-row volume ``.cs`` file (NUMPY format, readable with ``numpy.load``) to ``path``.

    The caller makes it atomic (the writers of :class:`locband.io.outputs.OutputSet` get a
    temporary path).
    """
    dset = volume_dataset(slots, uid=uid)
    target = Path(path)
    with open(target, "wb") as fh:  # a file object: Dataset.save never appends a suffix to it
        dset.save(fh)
    return target


def csg_text(*, group_name: str, cs_name: str, slots: dict[str, str], title: str, version: str) -> str:
    """The YAML ``.csg`` group file that points *Import Result Group* at a volume ``.cs`` file.

    Parameters
    ----------
    group_name : str
        Output group name.
    cs_name : str
        The ``.cs`` file name, relative to the ``.csg`` (written as ``'>name'``).
    slots : dict of str to str
        Slot name -> slot dtype (e.g. ``{"map": "blob"}``).
    title : str
        Group title.
    version : str
        Producer version (locband's).
    """
    lines = ["created: locband", "group:", f"  name: {group_name}", "  type: volume", f"  title: {title!r}",
             "  description: 'locband local band-wise filtering'", "results:"]
    for name, dtype in slots.items():
        lines += [f"  {name}:", f"    metafile: '>{cs_name}'", "    num_items: 1", f"    type: volume.{dtype}"]
    lines.append(f"version: locband-{version}")
    return "\n".join(lines) + "\n"


def write_csg(path: str | os.PathLike[str], **fields: Any) -> None:
    """Write the ``.csg`` group file (:func:`csg_text` of ``fields``) to ``path`` (the caller makes it atomic)."""
    Path(path).write_text(csg_text(**fields), encoding="utf-8")


def volume_cs_of(source: str | os.PathLike[str]) -> Path:
    """The volume ``.cs`` file of ``source``: a job folder (its last iteration's) or the file itself."""
    return find_volume_cs(source) if Path(source).is_dir() else Path(source)


def project_file(project_dir: str | os.PathLike[str], rel: str) -> Path | None:
    """The project file ``rel`` (relative to the project folder, or absolute) if this machine sees it, else None."""
    p = Path(rel)
    local = p if p.is_absolute() else Path(project_dir) / p
    return local if local.is_file() else None


def download(project: Any, rel: str, target: Path) -> Path:
    """Download the project file ``rel`` to ``target`` through a ``cryosparc.tools`` project; returns ``target``."""
    project.download_file(rel, target=str(target))
    return target


def upload(job: Any, name: str, local: Path) -> None:
    """Upload ``local`` into a cryoSPARC job's folder as ``name``."""
    with open(local, "rb") as fh:  # an open handle: the client does not close the files it opens itself
        job.upload(name, fh)
