"""MRC map reading and writing (mrcfile), with clear errors and atomic writes."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt

from locband.errors import InputFileError
from locband.io.atomic import atomic_path

__all__ = ["MapData", "MapHeader", "read_map", "read_map_header", "write_map", "SUPPORTED_MODES"]

#: MRC modes accepted on input: int8, int16, float32, float16, uint16.
SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}

#: bytes per voxel of every mode the MRC2014 standard defines (to compare with the file's length)
_MODE_BYTES = {0: 1.0, 1: 2.0, 2: 4.0, 3: 4.0, 4: 8.0, 6: 2.0, 12: 2.0, 101: 0.5}
_MODE_NAMES = {**SUPPORTED_MODES, 3: "complex int16", 4: "complex float32", 101: "4-bit"}
_HEADER_BYTES = 1024


@dataclass(frozen=True)
class MapData:
    """A map read from disk.

    Attributes
    ----------
    data : (nz, ny, nx) ndarray of float32
        The voxels (a private copy: the file is never modified), z slowest and x fastest
        whatever axis order the file's header declares.
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

    @property
    def shape(self) -> tuple[int, ...]:
        """``(nz, ny, nx)``, as :attr:`MapHeader.shape`."""
        return tuple(self.data.shape)


@dataclass(frozen=True)
class MapHeader:
    """What an MRC header says about a map, read without its voxels.

    Attributes
    ----------
    shape : tuple of int
        ``(nz, ny, nx)`` (the header's axis order applied, as :func:`read_map` returns the data).
    pixel_size_angstrom : float
        Voxel size from the header (x spacing); 0 if the header does not say.
    path : str
        Where it was read from.
    """

    shape: tuple[int, ...]
    pixel_size_angstrom: float
    path: str


def _file_size(p: Path, name: str) -> int:
    """The length of an MRC file, after checking that it is one file at least a header long."""
    if not p.exists():
        raise InputFileError(f"{name} does not exist")
    if p.is_dir():
        raise InputFileError(f"{name} is a folder, expected an MRC file")
    if not p.is_file():
        raise InputFileError(f"{name} is not a regular file, expected an MRC file")
    size = p.stat().st_size
    if size < _HEADER_BYTES:
        raise InputFileError(f"{name} is not an MRC file: it holds {size} bytes, fewer than the "
                             f"{_HEADER_BYTES}-byte MRC header")
    return size


def read_map_header(path: str | os.PathLike[str], *, what: str = "map") -> MapHeader:
    """Read the shape and voxel size of a 3-D MRC map without reading its voxels.

    Applies every check of :func:`read_map` that the header and the file's length allow, with
    the same messages, so a map that passes here fails :func:`read_map` only for its content.

    Parameters
    ----------
    path : str or path-like
        The MRC file.
    what : str
        How to call the file in error messages ("half-map 1", "mask", ...).

    Returns
    -------
    MapHeader
        Shape ``(nz, ny, nx)``, voxel size and path.

    Raises
    ------
    InputFileError
        As :func:`read_map`, except for problems only the voxel values show.
    """
    p = Path(path)
    name = f"{what} {str(p)!r}"
    try:
        size = _file_size(p, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # header oddities are judged below, not printed
            with mrcfile.open(p, mode="r", permissive=True, header_only=True) as mrc:
                order = _check_header(mrc.header, size, name)
                file_shape = tuple(int(n) for n in mrcfile.utils.data_shape_from_header(mrc.header))
                pixel = float(mrc.voxel_size.x)
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{name} is not a readable MRC file: {exc}") from None
    if len(file_shape) != 3:
        raise InputFileError(f"{name} must be a 3-D volume, got shape {file_shape}")
    if not np.isfinite(pixel) or pixel < 0:
        pixel = 0.0
    return MapHeader(shape=tuple(file_shape[i] for i in order), pixel_size_angstrom=pixel, path=str(p))


def read_map(path: str | os.PathLike[str], *, what: str = "map") -> MapData:
    """Read a 3-D MRC map as float32 ``(nz, ny, nx)``.

    Parameters
    ----------
    path : str or path-like
        The MRC file.
    what : str
        How to call the file in error messages ("half-map 1", "mask", ...).

    Returns
    -------
    MapData
        The voxels, voxel size, origin and path.

    Raises
    ------
    InputFileError
        Missing, a folder, not an MRC file, an unsupported mode, a data length that differs
        from what the header's mode, dimensions and extended header imply (shorter or longer),
        an axis order that is not a permutation of x, y, z, or not 3-D.

    Notes
    -----
    Byte order (the header's machine stamp) and the extended header are handled by mrcfile.
    The header's axis order (``mapc``, ``mapr``, ``maps``: which of x, y, z runs along the
    file's columns, rows and sections) is honoured: the data are transposed to ``(nz, ny, nx)``.
    """
    p = Path(path)
    name = f"{what} {str(p)!r}"
    try:
        size = _file_size(p, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # header oddities are judged below, not printed
            with mrcfile.open(p, mode="r", permissive=True) as mrc:
                order = _check_header(mrc.header, size, name)
                if mrc.data is None:
                    raise InputFileError(f"{name} is not a readable MRC file (mrcfile could not interpret its "
                                         "header)")
                data = np.array(mrc.data, dtype=np.float32, copy=True)
                pixel = float(mrc.voxel_size.x)
                header = mrc.header
                origin = (float(header.origin.x), float(header.origin.y), float(header.origin.z))
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{name} is not a readable MRC file: {exc}") from None
    if data.ndim != 3:
        raise InputFileError(f"{name} must be a 3-D volume, got shape {data.shape}")
    if order != (0, 1, 2):
        data = data.transpose(order)
    if not np.isfinite(pixel) or pixel < 0:
        pixel = 0.0
    return MapData(data=np.ascontiguousarray(data), pixel_size_angstrom=pixel, path=str(p), origin=origin)


def _check_header(header: Any, size: int, name: str) -> tuple[int, int, int]:
    """Check mode, dimensions, axis order and data length; return the transpose to (z, y, x).

    ``size`` is the file's length in bytes and ``name`` names the file in messages.
    """
    def fail(problem: str) -> InputFileError:
        if bytes(header.map) == b"MAP ":
            return InputFileError(f"{name} {problem}")
        return InputFileError(f"{name} is not a readable MRC file (no 'MAP ' label in its header, and it {problem})")

    mode = int(header.mode)
    if mode not in SUPPORTED_MODES:
        known = f" ({_MODE_NAMES[mode]})" if mode in _MODE_NAMES else ""
        raise fail(f"has MRC mode {mode}{known}; supported modes are 0, 1, 2, 6 and 12 (real-valued maps)")
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    nsymbt = int(header.nsymbt)
    if min(nx, ny, nz) < 1 or nsymbt < 0:
        raise fail(f"has an invalid header: {nx}x{ny}x{nz} voxels (columns, rows, sections) and {nsymbt} bytes "
                   "of extended header")
    axes = (int(header.mapc), int(header.mapr), int(header.maps))
    if sorted(axes) != [1, 2, 3]:
        raise fail(f"has axis order mapc, mapr, maps = {axes[0]}, {axes[1]}, {axes[2]} in its header: expected a "
                   "permutation of 1, 2, 3 (x, y, z)")
    n_voxels = nx * ny * nz
    expected = int(np.ceil(n_voxels * _MODE_BYTES[mode]))
    actual = size - _HEADER_BYTES - nsymbt
    if actual != expected:
        fits = [f"mode {m} ({SUPPORTED_MODES[m]})" for m in SUPPORTED_MODES if n_voxels * _MODE_BYTES[m] == actual]
        hint = f"; {actual} bytes would fit {' or '.join(fits)}" if fits else ""
        problem = "is truncated (shorter than its header says)" if actual < expected else \
            "is longer than its header says"
        raise fail(f"{problem}: mode {mode} ({SUPPORTED_MODES[mode]}) and {nx}x{ny}x{nz} voxels (columns, rows, "
                   f"sections) make {expected} bytes of data, but {max(actual, 0)} bytes follow the "
                   f"{_HEADER_BYTES}-byte header and {nsymbt}-byte extended header: the header's mode or "
                   f"dimensions do not match the data{hint}")
    # file axis k (sections, rows, columns) holds physical axis axes[2 - k] (1 = x, 2 = y, 3 = z)
    file_axes = (axes[2], axes[1], axes[0])
    return (file_axes.index(3), file_axes.index(2), file_axes.index(1))


def write_map(path: str | os.PathLike[str], data: npt.ArrayLike, *, pixel_size_angstrom: float,
              origin: tuple[float, float, float] = (0.0, 0.0, 0.0), labels: tuple[str, ...] = ()) -> Path:
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
    labels : tuple of str
        Header labels after mrcfile's own "Created by" label (at most 9, printable ASCII, at
        most 80 characters each).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        More than 9 labels, or a label that is not printable ASCII of at most 80 characters.
    """
    if len(labels) > 9 or any(len(t) > 80 or not t.isascii() or not t.isprintable() for t in labels):
        raise ValueError(f"MRC labels must be at most 9 printable ASCII strings of <= 80 characters, got {labels!r}")
    target = Path(path)
    arr = np.ascontiguousarray(data, dtype=np.float32)
    with atomic_path(target) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(arr)
            mrc.voxel_size = float(pixel_size_angstrom)
            mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = origin
            for text in labels:
                mrc.add_label(text)
            mrc.update_header_stats()
            mrc.flush()
    return target
