"""MRC map reading and writing (mrcfile), with clear errors and atomic writes."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt

from locband.io.atomic import atomic_path
from locband.io.errors import InputFileError

__all__ = ["MapData", "read_map", "write_map", "SUPPORTED_MODES"]

#: MRC modes accepted on input: int8, int16, float32, float16, uint16.
SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}


@dataclass(frozen=True)
class MapData:
    """A map read from disk.

    Attributes
    ----------
    data : (nz, ny, nx) ndarray of float32
        The voxels (a private copy: the file is never modified).
    pixel_size_angstrom : float
        Voxel size from the header (x spacing); 0 if the header does not say.
    path : str
        Where it was read from.
    origin : tuple of float
        Header origin (x, y, z) in Å, copied to outputs.
    """

    data: npt.NDArray[np.float32]
    pixel_size_angstrom: float
    path: str
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)


def read_map(path: str | os.PathLike[str], *, what: str = "map") -> MapData:
    """Read a 3-D MRC map as float32.

    Parameters
    ----------
    path : str or path-like
        The MRC file.
    what : str
        How to call the file in error messages ("half-map 1", "mask", ...).

    Raises
    ------
    InputFileError
        Missing, unreadable, truncated or not 3-D; unsupported mode.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise InputFileError(f"{what} {str(p)!r} is a folder, expected an MRC file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # header oddities are judged below, not printed
            with mrcfile.open(p, mode="r", permissive=True) as mrc:
                header = mrc.header
                if mrc.data is None:
                    raise InputFileError(f"{what} {str(p)!r} is not a readable MRC file "
                                         "(bad header, or shorter than its header says)")
                mode = int(header.mode)
                if mode not in SUPPORTED_MODES:
                    raise InputFileError(f"{what} {str(p)!r} has MRC mode {mode}; supported modes are "
                                         "0, 1, 2, 6 and 12 (real-valued maps)")
                nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
                expected = nx * ny * nz * np.dtype(mrc.data.dtype).itemsize
                actual = p.stat().st_size - 1024 - int(header.nsymbt)
                if actual < expected:
                    raise InputFileError(f"{what} {str(p)!r} is truncated: the header promises "
                                         f"{nz}x{ny}x{nx} voxels ({expected} bytes) but only {actual} "
                                         "bytes of data follow")
                data = np.array(mrc.data, dtype=np.float32, copy=True)
                vs = mrc.voxel_size
                pixel = float(vs.x)
                origin = (float(header.origin.x), float(header.origin.y), float(header.origin.z))
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{what} {str(p)!r} is not a readable MRC file: {exc}") from None
    if data.ndim != 3:
        raise InputFileError(f"{what} {str(p)!r} must be a 3-D volume, got shape {data.shape}")
    if not np.isfinite(pixel) or pixel < 0:
        pixel = 0.0
    return MapData(data=np.ascontiguousarray(data), pixel_size_angstrom=pixel, path=str(p), origin=origin)


def write_map(path: str | os.PathLike[str], data: npt.ArrayLike, *, pixel_size_angstrom: float,
              origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Path:
    """Write a float32 MRC map atomically (temporary file + rename).

    Parameters
    ----------
    path : str or path-like
        Target file; replaced only once the new file is complete.
    data : (nz, ny, nx) array_like, or (n, nz, ny, nx) for a volume stack
        Voxels, written as mode 2 (float32).
    pixel_size_angstrom : float
        Voxel size for the header.
    origin : tuple of float
        Header origin (x, y, z) in Å.

    Returns
    -------
    Path
        ``path``.
    """
    target = Path(path)
    arr = np.ascontiguousarray(data, dtype=np.float32)
    with atomic_path(target) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(arr)
            mrc.voxel_size = float(pixel_size_angstrom)
            mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = origin
            mrc.update_header_stats()
            mrc.flush()
    return target
