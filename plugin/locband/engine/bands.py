"""Frequency bands: a smooth partition of unity in spatial frequency, and their layout.

Band ``b`` has its centre at ``c[b]`` (cycles/voxel) and rises as ``sin^2`` from ``c[b-1]`` and
falls as ``cos^2`` to ``c[b+1]``; the first band (centre 0) is a low-pass, the last stays 1
beyond its centre (the cube corners). At any frequency at most two bands overlap and their
weights add up to exactly 1, so unit weights give back the input.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._device import array_module
from locband.engine._grid import frequency_squared
from locband.engine.params import BandLayout, FilterParams

__all__ = ["band_centres", "band_weight", "band_layout", "band_grid_shape"]

#: A band's statistics are computed on a grid whose Nyquist is this many times the band's top
#: frequency: products of two band maps reach twice the top frequency, and their aliases must
#: land above what the smoothing window passes (see band_grid_shape).
_CROP_FACTOR = 1.5


def band_centres(shape: tuple[int, ...], *, ratio: float, min_spacing_shells: float) -> npt.NDArray[np.float64]:
    """Band centres in cycles/voxel, increasing from 0 to 0.5.

    Geometric (``c[b+1] = ratio * c[b]``) from Nyquist down to where consecutive centres would
    be closer than ``min_spacing_shells`` Fourier shells of the smallest axis; linear below.
    """
    step = min_spacing_shells / min(shape)
    centres = [0.5]
    while centres[-1] - centres[-1] / ratio >= step:
        centres.append(centres[-1] / ratio)
    # below: equal steps down to 0, as many as fit without going under the minimum spacing
    last = centres[-1]
    n = max(1, int(math.floor(last / step + 1e-9)))
    centres.extend([last * k / n for k in range(n - 1, -1, -1)])
    return np.array(centres[::-1])


def band_weight(s: npt.NDArray[np.floating], centres: npt.NDArray[np.float64], b: int) -> npt.NDArray[np.float32]:
    """Weight of band ``b`` at frequencies ``s`` (cycles/voxel), float32, in the namespace of ``s``.

    Notes
    -----
    Rising edge ``sin^2(pi/2 t)``, falling edge ``cos^2(pi/2 t)`` with ``t`` the position
    between neighbouring centres; neighbours' edges sum to 1.
    """
    xp = array_module(s)
    s = xp.asarray(s, dtype=xp.float32)
    n = len(centres)
    w: npt.NDArray[np.float32] = xp.zeros(s.shape, dtype=xp.float32)
    c = centres
    if b > 0:
        lo, mid = np.float32(c[b - 1]), np.float32(c[b])
        sel = (s > lo) & (s < mid)
        w[sel] = xp.sin(np.float32(np.pi / 2) * (s[sel] - lo) / (mid - lo)) ** 2
    if b < n - 1:
        mid, hi = np.float32(c[b]), np.float32(c[b + 1])
        sel = (s >= mid) & (s < hi)
        w[sel] = xp.cos(np.float32(np.pi / 2) * (s[sel] - mid) / (hi - mid)) ** 2
        if b == 0:
            w[s < mid] = 1.0
    else:
        w[s >= np.float32(c[b])] = 1.0
    return w


def band_top(centres: npt.NDArray[np.float64], b: int) -> float:
    """Highest frequency where band ``b`` is non-zero (inf for the last band)."""
    return float(centres[b + 1]) if b + 1 < len(centres) else math.inf


def band_grid_shape(shape: tuple[int, ...], top: float) -> tuple[int, ...]:
    """Fourier-cropped grid for a band whose spectrum ends at ``top`` cycles/voxel.

    Each axis keeps ``2 * _CROP_FACTOR * top * n`` samples (rounded up to a fast FFT size),
    never more than the full axis.
    """
    out = []
    for n in shape:
        if not math.isfinite(top):
            out.append(n)
            continue
        m = _fft.next_fast_len(max(4, math.ceil(2 * _CROP_FACTOR * top * n)))
        out.append(min(m, n))
    return tuple(out)


def window_sigma(shape: tuple[int, ...], centres: npt.NDArray[np.float64], b: int, params: FilterParams) -> float:
    """Gaussian sigma (voxels) of band ``b``'s statistics window."""
    f = float(centres[b]) if b > 0 else 0.5 * float(centres[1])
    sigma = params.window_wavelengths / f
    return min(sigma, params.max_window_fraction * min(shape))


#: A Gaussian window of sigma voxels passes less than 1e-4 beyond 0.683/sigma cycles/voxel
#: (exp(-2 pi^2 sigma^2 f^2) = 1e-4), so the smoothed statistics fit on a grid of that Nyquist.
_WINDOW_PASS = math.sqrt(math.log(1e4) / (2 * math.pi ** 2))


def stats_grid_shape(shape: tuple[int, ...], band_grid: tuple[int, ...], sigma: float) -> tuple[int, ...]:
    """Grid on which a band's smoothed statistics are kept: Nyquist at the window's pass limit."""
    out = []
    for n, m in zip(shape, band_grid, strict=True):
        need = _fft.next_fast_len(max(4, math.ceil(2 * _WINDOW_PASS / sigma * n) + 1))
        out.append(min(need, m))
    return tuple(out)


def gaussian_window(s2: npt.NDArray[np.float32], sigma: float) -> npt.NDArray[np.float32]:
    """Fourier transform of a unit-sum Gaussian of ``sigma`` voxels at squared frequencies ``s2``."""
    return np.asarray(np.exp(np.float32(-2.0 * np.pi ** 2 * sigma ** 2) * s2), dtype=np.float32)


_NEFF_GRID = 64  # grid edge for n_effective; windows and band correlations fit well inside


def _n_effective(shape: tuple[int, ...], grid: tuple[int, ...], centres: npt.NDArray[np.float64],
                 b: int, sigma: float) -> float:
    """Effective number of independent samples in band ``b``'s window.

    For two independent white-noise band maps with correlation function ``rho``, the local
    cross-power over a window with weights ``g`` (sum 1) has relative variance
    ``sum_d h(d) rho(d)^2`` with ``h = g * g`` (autocorrelation); ``n_eff`` is its inverse.
    Computed on a grid of at most ``_NEFF_GRID`` samples per axis with the band's own
    frequency step, which holds both functions (they decay within a few sigma).
    """
    g = tuple(min(m, _NEFF_GRID) for m in grid)
    steps = tuple(m / (gi * n) for m, gi, n in zip(grid, g, shape, strict=True))  # cycles/voxel per index
    s2 = frequency_squared(g, steps)
    w = band_weight(np.sqrt(s2), centres, b)
    rho = _fft.irfftn((w * w).astype(np.complex64), g, backend="scipy")
    if rho.flat[0] <= 0:
        return 1.0
    rho /= rho.flat[0]
    # frequencies are in cycles per original voxel, so sigma stays in original voxels
    gw = gaussian_window(s2, sigma)
    h = _fft.irfftn((np.abs(gw) ** 2).astype(np.complex64), g, backend="scipy")
    h /= h.sum()
    var = float(np.sum(h.astype(np.float64) * rho.astype(np.float64) ** 2))
    return 1.0 / max(var, 1e-12)


def band_layout(shape: tuple[int, ...], params: FilterParams) -> BandLayout:
    """The bands, windows and grids the filter uses for volumes of ``shape``."""
    centres = band_centres(shape, ratio=params.band_ratio, min_spacing_shells=params.min_band_spacing_shells)
    sigmas, grids, stats, neff = [], [], [], []
    for b in range(len(centres)):
        grid = band_grid_shape(shape, band_top(centres, b))
        sigma = window_sigma(shape, centres, b, params)
        sigmas.append(sigma)
        grids.append(grid)
        stats.append(stats_grid_shape(shape, grid, sigma))
        neff.append(_n_effective(shape, grid, centres, b, sigma))
    return BandLayout(centres=tuple(float(c) for c in centres), sigma_voxels=tuple(sigmas),
                      grid_shapes=tuple(grids), stats_shapes=tuple(stats), n_effective=tuple(neff))
