"""Frequency grids of rfft spectra and Fourier cropping between grid sizes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["frequency_squared", "frequency_squared_rows", "crop_indices", "crop_blocks", "crop_rows",
           "rfft_shape", "rfft_multiplicity"]

_Slices = tuple[slice, ...]


def rfft_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the rfft spectrum of a real grid."""
    return tuple(shape[:-1]) + (shape[-1] // 2 + 1,)


def _axis_freq(m: int, step: float, *, half: bool) -> npt.NDArray[np.float64]:
    idx = np.arange(m // 2 + 1) if half else np.fft.fftfreq(m, d=1.0 / m)
    return np.asarray(idx * step, dtype=np.float64)


@lru_cache(maxsize=16)
def frequency_squared(grid: tuple[int, ...], steps: tuple[float, ...]) -> npt.NDArray[np.float32]:
    """Squared spatial frequency of every rfft coefficient of ``grid``.

    Parameters
    ----------
    grid : tuple of int
        Real grid shape ``(mz, my, mx)``.
    steps : tuple of float
        Frequency (cycles per original voxel) of one index step along each axis, i.e. ``1/n``
        for an original axis of ``n`` voxels (also on a Fourier-cropped grid).

    Returns
    -------
    (mz, my, mx // 2 + 1) ndarray of float32
        Read-only; cached.
    """
    fz = _axis_freq(grid[0], steps[0], half=False)[:, None, None] ** 2
    fy = _axis_freq(grid[1], steps[1], half=False)[None, :, None] ** 2
    fx = _axis_freq(grid[2], steps[2], half=True)[None, None, :] ** 2
    out = (fz + fy + fx).astype(np.float32)
    out.setflags(write=False)
    return out


def frequency_squared_rows(grid: tuple[int, ...], steps: tuple[float, ...], z0: int, z1: int,
                           xp: Any = np) -> Any:
    """Planes ``z0:z1`` of :func:`frequency_squared` (the same values), as an array of ``xp``.

    For volumes too large to keep the whole grid of frequencies: the work over slabs makes the
    planes it needs.
    """
    fz = _axis_freq(grid[0], steps[0], half=False)[z0:z1, None, None] ** 2
    fy = _axis_freq(grid[1], steps[1], half=False)[None, :, None] ** 2
    fx = _axis_freq(grid[2], steps[2], half=True)[None, None, :] ** 2
    if xp is np:
        return (fz + fy + fx).astype(np.float32)
    return (xp.asarray(fz) + xp.asarray(fy) + xp.asarray(fx)).astype(xp.float32)


@lru_cache(maxsize=64)
def crop_indices(full: tuple[int, ...], crop: tuple[int, ...]) -> tuple[npt.NDArray[np.intp], ...]:
    """Index arrays (for ``np.ix_``) that pick a cropped grid's rfft coefficients from a full one.

    Along the full-complex axes (z, y) a length-``m`` FFT holds frequencies ``0..(m+1)//2-1`` and
    ``-(m//2)..-1``; along the rfft axis (x) ``0..m//2``.
    """
    out = []
    for axis, (n, m) in enumerate(zip(full, crop, strict=True)):
        if axis < len(full) - 1:
            idx = np.r_[0:(m + 1) // 2, n - m // 2:n]
        else:
            idx = np.arange(m // 2 + 1)
        out.append(idx.astype(np.intp))
    return tuple(out)


def _axis_blocks(n: int, m: int, *, half: bool) -> list[tuple[slice, slice]]:
    if half:
        return [(slice(0, m // 2 + 1), slice(0, m // 2 + 1))]
    pos, neg = (m + 1) // 2, m // 2
    blocks = [(slice(0, pos), slice(0, pos))]
    if neg:
        blocks.append((slice(n - neg, n), slice(pos, m)))
    return blocks


@lru_cache(maxsize=64)
def crop_blocks(full: tuple[int, ...], crop: tuple[int, ...]) -> tuple[tuple[_Slices, _Slices], ...]:
    """The Fourier crop of :func:`crop_indices` as blocks of plain slices.

    Returns ``((in_full, in_crop), ...)``: ``cropped[in_crop] = spectrum[in_full]`` for every
    block is ``cropped = spectrum[np.ix_(*crop_indices(full, crop))]``, without index arrays
    (no gathered copies, and the same code on any array namespace).
    """
    per_axis = [_axis_blocks(n, m, half=axis == len(full) - 1)
                for axis, (n, m) in enumerate(zip(full, crop, strict=True))]
    out: list[tuple[_Slices, _Slices]] = [((), ())]
    for blocks in per_axis:
        out = [(a + (fa,), b + (ca,)) for a, b in out for fa, ca in blocks]
    return tuple(out)


def crop_rows(n: int, m: int, r0: int, r1: int) -> list[tuple[slice, slice]]:
    """Rows ``r0:r1`` of an axis cropped from ``n`` to ``m`` samples, as ``(in_full, in_crop)`` slices.

    Row ``i`` of the cropped axis (``m`` samples) is row ``i`` of the full one for the
    non-negative frequencies (``i < (m + 1) // 2``) and row ``n - m + i`` for the negative ones.
    """
    pos = (m + 1) // 2
    out = []
    if r0 < pos:
        out.append((slice(r0, min(r1, pos)), slice(r0, min(r1, pos))))
    if r1 > pos:
        a = max(r0, pos)
        out.append((slice(n - m + a, n - m + r1), slice(a, r1)))
    return out


@lru_cache(maxsize=16)
def rfft_multiplicity(shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """How many full-spectrum coefficients each rfft coefficient stands for (1 or 2), along x."""
    nx = shape[-1]
    w = np.full(nx // 2 + 1, 2.0, dtype=np.float32)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    w.setflags(write=False)
    return w
