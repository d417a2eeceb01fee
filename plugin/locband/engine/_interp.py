"""Separable periodic linear interpolation between grids that cover the same box.

Upsampling a smooth field (local weights, local resolution) from a coarse grid to a fine one
is done one axis at a time as a matrix product, which BLAS does far faster than a general
per-voxel interpolation.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["resample_linear"]


@lru_cache(maxsize=64)
def _matrix(n_out: int, n_in: int) -> npt.NDArray[np.float32]:
    """(n_out, n_in) periodic linear interpolation: output j sits at input position j*n_in/n_out."""
    pos = np.arange(n_out) * (n_in / n_out)
    i0 = np.floor(pos).astype(np.intp)
    frac = (pos - i0).astype(np.float32)
    a = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    np.add.at(a, (rows, i0 % n_in), 1.0 - frac)
    np.add.at(a, (rows, (i0 + 1) % n_in), frac)
    a.setflags(write=False)
    return a


def resample_linear(vol: npt.NDArray[np.float32], shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """Trilinear resampling of a periodic volume onto a grid of ``shape`` covering the same box.

    Sample ``j`` of an axis of ``n`` samples sits at ``j/n`` of the box edge, as on a
    Fourier-cropped grid.
    """
    shape = tuple(int(s) for s in shape)
    if vol.shape == shape:
        return vol
    out = np.asarray(vol, dtype=np.float32)
    if out.shape[2] != shape[2]:
        out = out @ _matrix(shape[2], out.shape[2]).T
    if out.shape[1] != shape[1]:
        out = np.matmul(_matrix(shape[1], out.shape[1]), out)
    if out.shape[0] != shape[0]:
        out = np.tensordot(_matrix(shape[0], out.shape[0]), out, axes=(1, 0))
    return np.ascontiguousarray(out, dtype=np.float32)
