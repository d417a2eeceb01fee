"""Frequency grids of rfft spectra and Fourier cropping between grid sizes."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["frequency_squared", "crop_indices", "rfft_shape", "rfft_multiplicity"]


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
