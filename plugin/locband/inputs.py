"""Half-maps and mask of a run: read them, check that they fit together, name the files in errors.

Shared by every host that works on MRC files (``locband filter``, the RELION External job,
cryoSPARC, CCP-EM's validation); :mod:`locband.io.mrc` reads each file, this module checks the
set.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from locband.errors import InputFileError
from locband.io.mrc import MapData, read_map

__all__ = ["PIXEL_SIZE_RTOL", "MIN_BOX_EDGE", "MapInfo", "check_inputs_agree", "load_inputs", "naming_engine_errors"]

#: voxel sizes that differ by less than this (relative) agree: programs round their headers differently,
#: and cryoSPARC's ``psize_A`` is a float32
PIXEL_SIZE_RTOL = 1e-3
#: the smallest box edge the engine plans for (:class:`locband.engine.local.LocalFilter`)
MIN_BOX_EDGE = 8
_MASK_SLACK = 1e-5  # a soft mask written as float16 or rounded may stray this far outside [0, 1]


class MapInfo(Protocol):
    """A map's shape, voxel size and file: :class:`MapData` or :class:`~locband.io.mrc.MapHeader`."""

    @property
    def shape(self) -> tuple[int, ...]: ...  # noqa: D102

    @property
    def pixel_size_angstrom(self) -> float: ...  # noqa: D102

    @property
    def path(self) -> str: ...  # noqa: D102


def _agree(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=PIXEL_SIZE_RTOL)


def check_inputs_agree(half1: MapInfo, half2: MapInfo, mask: MapInfo | None, *,
                       pixel_size_angstrom: float | None) -> float:
    """Check that the half-maps and mask fit together; return the voxel size to use.

    Works on :class:`~locband.io.mrc.MapHeader` (headers only, e.g. when a host validates a job
    before it runs) as on :class:`~locband.io.mrc.MapData`.

    Raises
    ------
    InputFileError
        Shapes differ or are too small, the voxel sizes differ, or half-map 1 says 0 without
        ``pixel_size_angstrom``.
    """
    if half1.shape != half2.shape:
        raise InputFileError(f"half-maps differ in shape: {half1.path} is {half1.shape} (z, y, x) but "
                             f"{half2.path} is {half2.shape}")
    if min(half1.shape) < MIN_BOX_EDGE:
        raise InputFileError(f"half-maps {half1.path!r} and {half2.path!r} are {half1.shape} voxels (z, y, x): "
                             f"locband needs at least {MIN_BOX_EDGE} along every axis")
    if mask is not None and mask.shape != half1.shape:
        raise InputFileError(f"mask {mask.path!r} has shape {mask.shape} but the half-maps are {half1.shape}")
    if pixel_size_angstrom is not None:
        return float(pixel_size_angstrom)
    p1, p2 = half1.pixel_size_angstrom, half2.pixel_size_angstrom
    if p1 <= 0:
        raise InputFileError(f"half-map 1 {half1.path!r} has voxel size 0 in its header: "
                             "give the voxel size with --pixel-size")
    if not _agree(p1, p2):
        raise InputFileError(f"half-maps differ in voxel size: {half1.path} says {p1:.4f} Å, "
                             f"{half2.path} says {p2:.4f} Å")
    if mask is not None and mask.pixel_size_angstrom > 0 and not _agree(p1, mask.pixel_size_angstrom):
        raise InputFileError(f"mask {mask.path!r} has voxel size {mask.pixel_size_angstrom:.4f} Å but the "
                             f"half-maps have {p1:.4f} Å")
    return float(p1)


def _non_finite(data: npt.NDArray[np.float32]) -> int:
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def _check_half(what: str, md: MapData) -> None:
    if float(md.data.max()) == float(md.data.min()):
        raise InputFileError(f"{what} {md.path!r} is constant (every voxel {float(md.data.flat[0])!r}): "
                             "expected a reconstruction")
    if _non_finite(md.data):
        raise InputFileError(f"{what} {md.path!r} has {_non_finite(md.data)} non-finite (NaN or infinite) voxels")


def _check_mask(mk: MapData) -> None:
    if _non_finite(mk.data):
        raise InputFileError(f"mask {mk.path!r} has {_non_finite(mk.data)} non-finite (NaN or infinite) voxels: "
                             "expected values in [0, 1]")
    lo, hi = float(mk.data.min()), float(mk.data.max())
    if lo < -_MASK_SLACK or hi > 1 + _MASK_SLACK:
        raise InputFileError(f"mask {mk.path!r} must hold values in [0, 1], found min {lo:.4g} and max {hi:.4g}")
    if hi <= 0:
        raise InputFileError(f"mask {mk.path!r} is all zero: expected a soft mask around the particle")


def load_inputs(half1: Path, half2: Path, mask: Path | None, *,
                pixel_size_angstrom: float | None) -> tuple[MapData, MapData, MapData | None, float]:
    """Read and cross-check the half-maps and mask; return them with the voxel size to use.

    Raises
    ------
    InputFileError
        A file cannot be read, the maps do not fit together (:func:`check_inputs_agree`), a
        half-map is constant or has non-finite voxels, a mask is outside [0, 1] or all zero.
    """
    m1 = read_map(half1, what="half-map 1")
    m2 = read_map(half2, what="half-map 2")
    mk = read_map(mask, what="mask") if mask is not None else None
    pixel_size_angstrom = check_inputs_agree(m1, m2, mk, pixel_size_angstrom=pixel_size_angstrom)
    _check_half("half-map 1", m1)
    _check_half("half-map 2", m2)
    if mk is not None:
        _check_mask(mk)
    return m1, m2, mk, float(pixel_size_angstrom)


@contextlib.contextmanager
def naming_engine_errors(half1: str | Path, half2: str | Path) -> Iterator[None]:
    """Turn the engine's ``ValueError`` about a pair of halves into an ``InputFileError`` naming both files."""
    try:
        yield
    except InputFileError:
        raise
    except ValueError as exc:
        raise InputFileError(f"half-maps {str(half1)!r} and {str(half2)!r}: {exc}") from None
