"""What every part of an interpretation map works from: the plan of one box and its working memory.

:class:`Plan` holds the box, its band layout, the linear filter planned for it, the settings and
the threads; each part of :class:`~locband.engine.denoise.Denoiser` is a function of it.

**Memory.** Each band of each map is made in two full-size buffers that the whole call reuses
(:class:`Buffers`: band map, then weights and the weighted band, transformed in place); they are
taken over from the linear start, and serve the consistency test and the cross-validation after.
Work over whole volumes runs over slabs of planes on the plan's threads (:meth:`Plan.run_slabs`),
with no full-size temporaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _slabs
from locband.engine._grid import rfft_shape
from locband.engine._interp import resample_linear
from locband.engine._shells import ShellSums
from locband.engine.denoise_params import DenoiseParams
from locband.engine.local import LocalFilter

__all__ = ["Buffers", "Plan", "Vol", "resampled", "wiener"]

Vol = npt.NDArray[np.float32]


class Plan:
    """The box, bands, linear filter, settings and threads of one :class:`~locband.engine.denoise.Denoiser`.

    Parameters
    ----------
    lf : LocalFilter
        The linear filter planned for the box (its bands, statistics and FFT plans).
    params : DenoiseParams
        Settings with the envelope's smoothing and the start of sharpening resolved.
    """

    def __init__(self, lf: LocalFilter, params: DenoiseParams) -> None:
        self.filter, self.params = lf, params
        self.shape, self.layout, self.mask = lf.shape, lf.layout, lf.mask
        self.workers, self.backend = lf.workers, lf.backend
        self.shells = ShellSums(self.shape, workers=self.workers)
        self.xp: Any = np  # the array namespace of new array code (NumPy; the linear filter's own on a GPU path)
        self.volumes: npt.NDArray[np.float64] | None = None  # the bands' volumes for local sharpening, made once

    def rows(self) -> int:
        """Planes per slab of the box (see :meth:`run_slabs`)."""
        return _slabs.slab_rows(self.shape[0], self.shape[1] * self.shape[2], np)

    def run_slabs(self, fn: Callable[[int, int], None]) -> None:
        """``fn(z0, z1)`` over slabs of planes of the box, on the denoiser's threads."""
        _slabs.run(fn, self.shape[0], rows=self.rows(), workers=self.workers)


class Buffers:
    """Two full-size complex buffers for one call, in which every band of every map is made.

    A band map and its weighted spectrum (on the band's grid, never larger than the box) are
    made at the start of the two buffers, so that the work over the bands allocates no memory
    (fresh pages cost system time); the buffers are taken over from the linear start's sums,
    which leave two spare, and serve the consistency test and the cross-validation after.
    """

    def __init__(self, shape: tuple[int, ...], xp: Any, spare: list[Any] | None = None) -> None:
        self.shape, self.xp = shape, xp
        self.full: list[Any] = list(spare or [])[:2]

    def pair(self, grid: tuple[int, ...]) -> list[Any]:
        """Two C-contiguous complex64 arrays of ``grid``'s rfft shape, in the two buffers."""
        xp = self.xp
        while len(self.full) < 2:
            self.full.append(xp.empty(rfft_shape(self.shape), dtype=xp.complex64))
        if grid == self.shape:
            return self.full[:2]
        size = int(np.prod(rfft_shape(grid)))
        return [buf.reshape(-1)[:size].reshape(rfft_shape(grid)) for buf in self.full]

    def release(self) -> None:
        """Let the full-size buffers go."""
        self.full = []


def resampled(vol: Vol, shape: tuple[int, ...]) -> Vol:
    """:func:`resample_linear` that always returns a new array (safe to modify in place)."""
    out = resample_linear(vol, shape)
    return out.copy() if out is vol else out


def wiener(signal: Vol, noise: Vol) -> Vol:
    """``S / (S + N)`` (a new array) for ``S, N >= 0``; 0 where both are 0."""
    den = signal + noise
    np.maximum(den, np.float32(1e-30), out=den)
    np.divide(signal, den, out=den)
    return den
