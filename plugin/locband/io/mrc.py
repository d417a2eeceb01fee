"""MRC map reading and writing (mrcfile), with clear errors and atomic writes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt

from locband.errors import InputFileError
from locband.io.atomic import atomic_path

__all__ = ["MapData", "MapHeader", "read_map", "read_map_header", "read_central_slices", "write_map",
           "SUPPORTED_MODES"]

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


def read_central_slices(path: str | os.PathLike[str], *, what: str = "map"
                        ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The central xy section (fixed z) and xz section (fixed y) of a map, read without the rest.

    The file is memory-mapped and only the two sections are copied out (as float32, in
    ``(z, y, x)`` orientation whatever the header's axis order), so a report can show a large
    map's input without holding it.

    Parameters
    ----------
    path : str or path-like
        MRC file (checked as :func:`read_map` checks it).
    what : str
        What the file is, for messages.

    Returns
    -------
    xy : (ny, nx) ndarray of float32
        Section ``z = nz // 2``.
    xz : (nz, nx) ndarray of float32
        Section ``y = ny // 2``.

    Raises
    ------
    InputFileError
        As :func:`read_map`.
    """
    p = Path(path)
    name = f"{what} {str(p)!r}"
    try:
        size = _file_size(p, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # header oddities are judged below, not printed
            with mrcfile.mmap(p, mode="r", permissive=True) as mrc:
                order = _check_header(mrc.header, size, name)
                if mrc.data is None:
                    raise InputFileError(f"{name} is not a readable MRC file (mrcfile could not interpret its "
                                         "header)")
                if mrc.data.ndim != 3:
                    raise InputFileError(f"{name} must be a 3-D volume, got shape {mrc.data.shape}")
                vol = mrc.data.transpose(order)
                nz, ny, _ = vol.shape
                return (np.array(vol[nz // 2], dtype=np.float32), np.array(vol[:, ny // 2, :], dtype=np.float32))
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{name} is not a readable MRC file: {exc}") from None


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

    The voxels are written a slab of sections at a time, and the header's statistics (``dmin``,
    ``dmax``, ``dmean``, ``rms``) are summed over the same slabs: no full-size copy is made, also
    when ``data`` is a strided view (the engine's outputs live in padded transform buffers), so
    writing adds only a slab to the caller's memory.

    Parameters
    ----------
    path : str or path-like
        Target file; replaced only once the new file is complete.
    data : (nz, ny, nx) array_like, (n, nz, ny, nx) for a volume stack, or (ny, nx) for an image
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
        More than 9 labels, a label that is not printable ASCII of at most 80 characters, or
        data that is not an image, a volume or a volume stack.
    """
    if len(labels) > 9 or any(len(t) > 80 or not t.isascii() or not t.isprintable() for t in labels):
        raise ValueError(f"MRC labels must be at most 9 printable ASCII strings of <= 80 characters, got {labels!r}")
    arr = np.asanyarray(data)
    if arr.ndim not in (2, 3, 4) or arr.size == 0:
        raise ValueError(f"an MRC map needs a non-empty (nz, ny, nx) volume, (n, nz, ny, nx) stack or (ny, nx) "
                         f"image, got shape {arr.shape}")
    slabs = _slabs(arr)
    target = Path(path)
    with atomic_path(target) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            # the header from a one-voxel stand-in of the same kind (image, volume or stack), then its size
            mrc.set_data(np.zeros((1,) * arr.ndim, dtype=np.float32))
            h = mrc.header
            sections = arr.shape[-3] if arr.ndim > 2 else 1
            h.nx, h.ny, h.nz = arr.shape[-1], arr.shape[-2], sections * (arr.shape[0] if arr.ndim == 4 else 1)
            h.mx, h.my, h.mz = arr.shape[-1], arr.shape[-2], sections
            mrc.voxel_size = float(pixel_size_angstrom)
            h.origin.x, h.origin.y, h.origin.z = origin
            for text in labels:
                mrc.add_label(text)
            h.dmin, h.dmax, h.dmean, h.rms = _stats(slabs)
            data_offset = _HEADER_BYTES + int(h.nsymbt)
        with open(tmp, "r+b") as fh:  # the stand-in voxel replaced by the data, slab by slab
            fh.seek(data_offset)
            for slab in slabs():  # file writes (not ndarray.tofile): a full disk raises OSError with its errno
                fh.write(np.ascontiguousarray(slab, dtype=np.float32).data)
            fh.truncate()
    return target


#: bytes of one slab of sections written or summed at a time
_SLAB_BYTES = 16 << 20


def _slabs(arr: npt.NDArray[Any]) -> Callable[[], Iterator[npt.NDArray[Any]]]:
    """Slabs of ``arr``'s sections, volume by volume for a stack, each about :data:`_SLAB_BYTES`.

    Returns a function that yields them afresh on every call (views, in file order).
    """
    volumes = arr if arr.ndim == 4 else arr[None] if arr.ndim == 3 else arr[None, None]
    nz, ny, nx = volumes.shape[1:]
    step = max(1, _SLAB_BYTES // (ny * nx * 4))

    def slabs() -> Iterator[npt.NDArray[Any]]:
        for vol in volumes:
            for z0 in range(0, nz, step):
                yield vol[z0:z0 + step]
    return slabs


def _stats(slabs: Callable[[], Iterator[npt.NDArray[Any]]]) -> tuple[np.float32, np.float32, np.float32, np.float32]:
    """``dmin, dmax, dmean, rms`` over all voxels, slab by slab (float64 sums; rms about the mean)."""
    lo, hi, total, n = np.inf, -np.inf, 0.0, 0
    for slab in slabs():
        lo, hi = float(np.minimum(lo, slab.min())), float(np.maximum(hi, slab.max()))  # NaN propagates, as in mrcfile
        total += float(slab.sum(dtype=np.float64))
        n += slab.size
    mean = total / n
    squares = 0.0
    for slab in slabs():
        d = slab.astype(np.float64).ravel()  # one slab-sized temporary
        d -= mean
        squares += float(np.dot(d, d))
    return np.float32(lo), np.float32(hi), np.float32(mean), np.float32(np.sqrt(squares / n))
