"""Write MRC files the way other programs do (odd modes, byte orders, axis orders, extended
headers) or get them wrong (header and data that disagree), for the input-reading tests.

Every writer documents the file it makes, so that a test can state the correct reading.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.dtypes import HEADER_DTYPE
from mrcfile.utils import machine_stamp_from_byte_order

HEADER_BYTES = 1024


def write_standard(path: Path, data: np.ndarray, *, voxel: float = 1.4) -> Path:
    """A plain MRC2014 file of ``data`` in its own dtype (mode from the dtype), axis order 1, 2, 3."""
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(data))
        m.voxel_size = voxel
    return path


def set_header_int(path: Path, word: int, value: int) -> Path:
    """Overwrite 32-bit header word ``word`` (0-based; 3 = mode, 16-18 = mapc/mapr/maps) of a little-endian file."""
    raw = bytearray(path.read_bytes())
    raw[4 * word:4 * word + 4] = np.int32(value).astype("<i4").tobytes()
    path.write_bytes(bytes(raw))
    return path


def write_permuted(path: Path, vol_zyx: np.ndarray, axes: tuple[int, int, int], *, voxel: float = 1.4) -> Path:
    """``vol_zyx`` stored with header axis order ``axes = (mapc, mapr, maps)``.

    By the MRC2014 definition the file's columns (fastest) run along axis ``mapc`` (1 = x,
    2 = y, 3 = z), its rows along ``mapr`` and its sections along ``maps``, so the file array
    (sections, rows, columns) is ``vol_zyx`` transposed to (maps, mapr, mapc).
    """
    mapc, mapr, maps = axes
    zyx_axis = {3: 0, 2: 1, 1: 2}  # physical axis -> axis of vol_zyx
    stored = np.ascontiguousarray(vol_zyx.transpose(zyx_axis[maps], zyx_axis[mapr], zyx_axis[mapc]))
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(stored)
        m.header.mapc, m.header.mapr, m.header.maps = mapc, mapr, maps
        m.voxel_size = voxel
    return path


def write_big_endian(path: Path, data: np.ndarray, *, voxel: float = 1.4) -> Path:
    """A big-endian file: header fields, machine stamp (0x11 0x11) and voxels all big-endian."""
    write_standard(path, data, voxel=voxel)
    raw = path.read_bytes()
    header = np.frombuffer(raw[:HEADER_BYTES], dtype=HEADER_DTYPE).copy()
    big = header.astype(header.dtype.newbyteorder(">"))
    big["machst"] = np.frombuffer(bytes(machine_stamp_from_byte_order(">")), dtype=np.uint8)
    body = np.ascontiguousarray(data).astype(data.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(big.tobytes() + body)
    return path


def write_extended(path: Path, data: np.ndarray, *, nbytes: int = 1200, voxel: float = 1.4) -> Path:
    """A file with an ``nbytes``-long extended header (nsymbt) filled with a non-zero pattern."""
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(data))
        m.set_extended_header(np.arange(nbytes, dtype=np.uint8) | np.uint8(1))
        m.header.exttyp = b"MRCO"
        m.voxel_size = voxel
    return path
