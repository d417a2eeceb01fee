"""Local significance weighting: the prior density of a map, and its bands reweighted by it (steps 2-3).

Within a band's statistics window the signal power is known (``S``) but not where it lies. The
prior density ``rho`` (the real-space priors of :mod:`locband.engine.priors` applied to the map)
predicts it lies where the density is: ``m = (rho^g + f)/(<rho^g>_w + f)`` (``<>_w`` the band's
window mean, ``g = significance_power``, ``f`` a floor), so the window keeps its signal power.
The prior is trusted only where the data say little: ``S_x = S (1 + (1 - q)(m - 1))``, and each
voxel's band value gets the weight ``S_x / (S_x + nu)``, how certain it is to be signal. Where
the data have no signal (``S = 0``) nothing can be added: the weights redistribute what the data
support. Guards: a band whose linear weights never reach :data:`_SKIP` keeps them
(:func:`band_changes`); the non-linear weights of a band never pass more noise power than its
linear ones (:func:`_new_weights`); a weighted band is kept near its own frequencies
(:class:`~locband.engine._denoise_limits.Limits`).

**Cost and memory.** Each band map and its weighted band are made in the call's two reused
buffers (:class:`~locband.engine._denoise_plan.Buffers`, transformed in place); the weights and
products run over slabs of planes on the denoiser's threads, with no full-size temporaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from locband.engine import _fft, _slabs
from locband.engine._denoise_limits import Limits
from locband.engine._denoise_plan import Buffers, Plan, Vol
from locband.engine._denoise_statistics import DenoiseStatistics
from locband.engine._grid import crop_blocks, crop_rows, frequency_squared, rfft_shape
from locband.engine._interp import downsample_rows, resample_rows
from locband.engine.bands import gaussian_window
from locband.engine.priors import prior_density

__all__ = ["Prior", "band_changes", "map_prior", "reweigh"]

_BLOB_Z = 3.0  # blobs: connected density this many residual-noise SDs above the solvent level
_SKIP = 0.02  # a band whose linear weight stays below this everywhere keeps its linear weights


@dataclass
class Prior:
    """One map's prior density ``rho**power``, its mean inside the envelope, and its window means."""

    rho: Vol
    scale: float
    windows: list[Vol]


def map_prior(plan: Plan, vol: Vol, envelope: Vol | None, residual_var: Vol, res_vox: float,
              out: Vol | None = None) -> Prior | None:
    """The priors' density of one map, as ``rho**power`` with its scale and window means (``rho`` in ``out``)."""
    par, lay = plan.params, plan.layout
    sd = math.sqrt(max(float(np.percentile(residual_var, 95)), 0.0))
    rho, _ = prior_density(vol, envelope=envelope, positivity=par.positivity, connectivity=par.connectivity,
                           blob_threshold=_BLOB_Z * sd, blob_min_voxels=4.0 / 3.0 * math.pi * (2 * res_vox) ** 3,
                           blob_distance_voxels=2 * res_vox, workers=plan.workers, backend=plan.backend, out=out)
    rho **= np.float32(par.significance_power)
    scale = _mean_where(rho, envelope)
    if not scale > 0:
        return None
    # the windows pass nothing beyond the largest statistics grid: the spectrum of rho is
    # computed only there, and each band's window mean is cropped from it
    stats = lay.stats_shapes[1:]
    top = tuple(max(g[k] for g in stats) for k in range(3))
    spec = _fft.rfftn_cropped(lambda z0, z1: [rho[z0:z1]], plan.shape, top, count=1, workers=plan.workers,
                              backend=plan.backend)[0]
    steps = tuple(1.0 / n for n in plan.shape)
    windows: list[Vol] = [np.zeros(0, np.float32)]
    for b in range(1, lay.n_bands):
        small = lay.stats_shapes[b]
        part = np.empty(rfft_shape(small), np.complex64)
        for in_top, in_small in crop_blocks(top, small):
            part[in_small] = spec[in_top]
        part *= gaussian_window(frequency_squared(small, steps), lay.sigma_voxels[b])
        windows.append(_fft.irfftn(part, small, overwrite_input=True, workers=plan.workers, backend=plan.backend))
    return Prior(rho=rho, scale=scale, windows=windows)


def _mean_where(rho: Vol, envelope: Vol | None) -> float:
    """Mean of ``rho`` inside the envelope (``> 0.5``), or where it is positive without one (0: nowhere).

    Float64 sums over slabs of planes: no full-size temporaries.
    """
    total, count = 0.0, 0
    step = max(1, 2 ** 20 // max(1, rho[0].size))
    for z in range(0, rho.shape[0], step):
        part = rho[z:z + step]
        sel = envelope[z:z + step] > 0.5 if envelope is not None else part > 0
        total += float(part[sel].sum(dtype=np.float64))
        count += int(np.count_nonzero(sel))
    return total / count if count else 0.0


def band_changes(i: int, b: int, stats: DenoiseStatistics, gains: list[list[Vol | None]]) -> bool:
    """Whether band ``b`` of map ``i`` can change: sharpened, or its linear weight reaches ``_SKIP``.

    Where the linear weight stays below ``_SKIP`` everywhere the band holds (almost) no
    signal; the non-linear weights pass no more noise power than the linear ones (see
    :func:`reweigh`), so leaving such a band at its linear weights changes the map by
    less than ``_SKIP`` of the band's noise.
    """
    if gains[i][b] is not None:
        return True
    nu = stats.noise_coarse[b] * np.float32(0.5 if i == 2 else 1.0)
    return bool(np.any(stats.signal_coarse[b] > np.float32(_SKIP / (1.0 - _SKIP)) * nu))


def reweigh(plan: Plan, i: int, b: int, spectra: tuple[npt.NDArray[np.complex64], ...], stats: DenoiseStatistics,
            prior: Prior | None, gain: Vol | None, limits: Limits, acc: npt.NDArray[np.complex64],
            bufs: Buffers) -> None:
    """Add band ``b`` of map ``i`` times (new weight - linear weight), limited, to the spectrum ``acc``.

    With ``q`` the linear weight (the local FSC ``S / (S + nu)``) and ``m`` the prior's
    blended modulation, the new weight ``S m / (S m + nu)`` is ``q m / (q m + 1 - q)``. The
    band map is made in one buffer; the new weights are made slab by slab into the other
    (:func:`_new_weights`), and then, once the noise-power guard has its factor, turned slab by
    slab into the weighted band and transformed in place (:func:`~locband.engine._fft.rfftn_slabs`).
    """
    grid = plan.layout.grid_shapes[b]
    band_buf, out = bufs.pair(grid)
    _band_spectrum(plan, b, spectra, band_buf)
    band = _fft.irfftn(band_buf, grid, overwrite_input=True, out=_fft.real_view(band_buf, grid),
                       workers=plan.workers, backend=plan.backend)
    w = _fft.real_view(out, grid)
    factor = _new_weights(plan, i, b, stats, prior, w)

    def produce(z0: int, z1: int) -> list[Vol]:
        v = w[z0:z1]
        if factor is not None:
            v *= factor
        if gain is not None:
            v *= resample_rows(gain, grid, z0, z1)
        v -= _linear_weight(plan, i, b, stats, z0, z1)
        v *= band[z0:z1]
        if i == 2:
            v *= np.float32(0.5)
        return [v]

    _fft.rfftn_slabs(produce, grid, [out], workers=plan.workers, backend=plan.backend)
    limits.accumulate(b, out, acc, workers=plan.workers)


def _linear_weight(plan: Plan, i: int, b: int, stats: DenoiseStatistics, z0: int, z1: int) -> Vol:
    """Planes ``z0:z1`` of map ``i``'s linear weight of band ``b`` on the band's grid (as in the linear start).

    A view of the statistics when their grid is the band's: never to be changed in place.
    """
    q = resample_rows(stats.weight[b], plan.layout.grid_shapes[b], z0, z1)
    if i == 2:  # the average's 2w/(1+w)
        q = q / (1 + q)
        q *= np.float32(2.0)
    return q  # type: ignore[no-any-return]


def _new_weights(plan: Plan, i: int, b: int, stats: DenoiseStatistics, prior: Prior | None, out: Vol
                 ) -> np.float32 | None:
    """Map ``i``'s new weights of band ``b`` into ``out`` (the band's grid), slab by slab.

    Returns the noise-power guard's factor (None: 1): the non-linear weights never pass more
    noise power than the linear ones, ``sum w^2 nu <= sum q^2 nu`` (rescaled otherwise);
    they redistribute, they do not add. Without a prior the weights are the linear ones.
    """
    grid, par = plan.layout.grid_shapes[b], plan.params
    rows = _slabs.slab_rows(grid[0], grid[1] * grid[2], np)
    powers: list[tuple[float, float]] = [(0.0, 0.0)] * len(_slabs.row_slabs(grid[0], rows))
    floor = np.float32(par.significance_floor * prior.scale) if prior is not None else np.float32(0)

    def work(z0: int, z1: int) -> None:
        q = _linear_weight(plan, i, b, stats, z0, z1)
        if prior is None:
            out[z0:z1] = q
            return
        # on a cropped grid, rho**power by linear interpolation: a predictor of where the
        # signal lies needs no exact band limit (Fourier cropping measured no better, at
        # one more transform per band and map)
        m = downsample_rows(prior.rho, grid, z0, z1) + floor
        den = np.maximum(resample_rows(prior.windows[b], grid, z0, z1), 0)
        den += floor
        m /= den
        del den
        # S_x = S (1 + (1 - q)(m - 1)): the prior decides only where the data say little
        m -= np.float32(1.0)
        m *= np.float32(1.0) - q
        m += np.float32(1.0)
        m *= q  # q m, then the weight q m / (q m + 1 - q)
        w: Vol = out[z0:z1]
        np.add(m, np.float32(1.0) - q, out=w)
        np.maximum(w, np.float32(1e-30), out=w)
        np.divide(m, w, out=w)
        nu = resample_rows(stats.noise[b], grid, z0, z1)
        powers[z0 // rows] = (float(np.vdot(q, q * nu)), float(np.vdot(w, w * nu)))

    _slabs.run(work, grid[0], rows=rows, workers=plan.workers)
    e0, e1 = math.fsum(p[0] for p in powers), math.fsum(p[1] for p in powers)
    return np.float32(math.sqrt(e0 / e1)) if prior is not None and e1 > e0 > 0 else None


def _band_spectrum(plan: Plan, b: int, spectra: tuple[npt.NDArray[np.complex64], ...], dst: npt.NDArray[np.complex64]
                   ) -> None:
    """``dst = sum(spectra)[crop] * band weight``: band ``b`` of one map on the band's grid, slab by slab.

    As :meth:`~locband.engine._local_stats.LocalStatistics._band_spectra`, for the sum of one
    or two spectra (the average's is ``F1 + F2``), without a full-size sum.
    """
    lf = plan.filter
    setup = lf._setup(b)
    grid = setup.grid
    mxh = grid[2] // 2 + 1
    y_rows = crop_rows(plan.shape[1], grid[1], 0, grid[1])

    def work(z0: int, z1: int) -> None:
        w = setup.weight[z0:z1] if setup.weight is not None else lf._weight_rows(b, z0, z1)
        for z_full, z_band in crop_rows(plan.shape[0], grid[0], z0, z1):
            wz = w[z_band.start - z0:z_band.stop - z0]
            for y_full, y_band in y_rows:
                part = spectra[0][z_full, y_full, :mxh]
                if len(spectra) > 1:
                    part = part + spectra[1][z_full, y_full, :mxh]
                np.multiply(part, wz[:, y_band], out=dst[z_band, y_band])

    _slabs.run(work, grid[0], rows=_slabs.slab_rows(grid[0], grid[1] * mxh, np), workers=plan.workers)
