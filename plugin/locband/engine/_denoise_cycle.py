"""One density-modification cycle of an interpretation map: priors, reweighted bands, sharpening, solvent.

Per map (half 1, half 2, average; one after the other, so that only one map's envelope, prior
and temporaries are held at a time): the real-space priors turn the current map into a prior
density (:func:`~locband.engine._denoise_weighting.map_prior`), and its bands are reweighted
from the data (:func:`~locband.engine._denoise_weighting.reweigh`) and added to the linear map.
In the last cycle each band's weight is also multiplied by the local sharpening gain
(:func:`_gains`, from :mod:`locband.engine.sharpen`), the average is checked against the halves
(:func:`~locband.engine._denoise_consistency.agree`) and each map's solvent is made flat
(:func:`~locband.engine._denoise_solvent.flatten`).

**Memory.** The changes of a map are summed in one full-size spectrum, which becomes the new map
in place (:func:`_finish`); the prior densities of the three maps share one volume.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine import _fft, _slabs
from locband.engine._denoise_consistency import agree
from locband.engine._denoise_limits import Limits, upper_spread
from locband.engine._denoise_plan import Buffers, Plan, Vol, wiener
from locband.engine._denoise_solvent import find_envelope, flatten
from locband.engine._denoise_statistics import DenoiseStatistics
from locband.engine._denoise_weighting import band_changes, map_prior, reweigh
from locband.engine._grid import rfft_shape
from locband.engine.params import ProgressCallback
from locband.engine.sharpen import band_volumes, local_bfactor, sharpening_gain, significance_ramp

__all__ = ["cycle"]


def cycle(plan: Plan, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64], stats: DenoiseStatistics,
          base: list[Vol], maps: list[Vol], *, final: bool, bufs: Buffers,
          report: ProgressCallback) -> tuple[list[Vol], float | None]:
    """Priors on each map, then its bands reweighted; returns ``base`` plus the changes.

    The maps are done one after the other (half 1, half 2, average) so that only one
    map's envelope, prior and temporaries are held at a time. Also returns the number of
    voxels inside the average's envelope (None without one).
    """
    par, lay = plan.params, plan.layout
    gains: list[list[Vol | None]] = _gains(plan, stats) if final else [[None] * lay.n_bands for _ in range(3)]
    limits = Limits(plan.shape, lay, upper_spread(plan, stats))
    cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
    out: list[Vol] = []
    env_volume = None
    soft: dict[str, Vol] = {}  # the widened mask of flatten, made once
    rho: Vol | None = None  # one buffer for the three maps' prior densities
    for i in range(3):
        spectra = (f1,) if i == 0 else (f2,) if i == 1 else (f1, f2)
        # the average's spectrum is twice the mean's: its smoothed map is the mean's, its noise
        # is half a half's
        env = find_envelope(plan, spectra, stats.envelope_noise_variance / (2.0 if i == 2 else 1.0))
        if env is not None and i == 2:
            env_volume = float(np.count_nonzero(env > 0.5))
        prior = None
        if par.significance:
            if rho is None:
                rho = np.empty(plan.shape, np.float32)
            prior = map_prior(plan, maps[i], env, stats.residual_variance[i], stats.resolution_voxels, out=rho)
        acc = np.zeros(rfft_shape(plan.shape), np.complex64)
        for b in range(1, lay.n_bands):
            if band_changes(i, b, stats, gains) and (prior is not None or gains[i][b] is not None):
                reweigh(plan, i, b, spectra, stats, prior, gains[i][b], limits, acc, bufs)
            report((i + cost[b] / cost[-1]) / 3, f"density modification: map {i + 1}/3, band {b + 1}")
        del prior
        new = _finish(plan, acc, base[i])
        del acc
        if final and i == 2 and par.consistency:
            new = agree(plan, new, base, env, stats, bufs.pair(plan.shape)[0])
        if final and env is not None:
            new = flatten(plan, new, env, soft)
        del env
        out.append(new)
    return out, env_volume


def _finish(plan: Plan, acc: npt.NDArray[np.complex64], base: Vol) -> Vol:
    """``base`` plus the map of the spectrum ``acc``, made in ``acc``'s memory (consumed).

    The inverse transform runs in place (rows padded to ``2 (nx // 2 + 1)`` values); the
    sum is then written to the start of the same memory as a C-contiguous volume, slab
    after slab in increasing order: a slab's padded rows start at or after where its
    contiguous rows go, so no slab overwrites rows that a later one still reads.
    """
    shape = plan.shape
    padded = _fft.irfftn(acc, shape, overwrite_input=True, out=_fft.real_view(acc, shape), workers=plan.workers,
                         backend=plan.backend)
    vol = acc.view(np.float32).reshape(-1)[:int(np.prod(shape))].reshape(shape)
    rows = _slabs.slab_rows(shape[0], shape[1] * shape[2], np)
    for z0, z1 in _slabs.row_slabs(shape[0], rows):
        vol[z0:z1] = padded[z0:z1] + base[z0:z1]
    return vol



def _gains(plan: Plan, stats: DenoiseStatistics) -> list[list[Vol | None]]:
    """Per map and band, the sharpening gain on the coarse grid (None: 1 everywhere)."""
    par, lay = plan.params, plan.layout
    n = lay.n_bands
    out: list[list[Vol | None]] = [[None] * n for _ in range(3)]
    if par.sharpen == "off":
        return out
    sig = np.stack(stats.signal_coarse)
    noise = np.stack(stats.noise_coarse)
    crit = par.filter.criterion
    if par.sharpen == "local":
        if plan.volumes is None:
            plan.volumes = band_volumes(plan.shape, lay.centres)
        start = float(par.sharpen_from or 0.0)
        bmap: Vol | float = local_bfactor(sig, wiener(sig, noise * np.float32(0.5)), centres=lay.centres,
                                           volumes=plan.volumes, fit_from=start, criterion=crit)
    else:
        bmap, start = -par.bfactor_voxels, 0.0  # RELION's sign: a negative B sharpens
    for b in range(n):
        gain = sharpening_gain(bmap, lay.centres[b], start=start, max_gain=par.max_gain)
        if np.all(gain == 1):
            continue
        for i, nu in enumerate((noise[b], noise[b], noise[b] * np.float32(0.5))):
            ramp = significance_ramp(wiener(sig[b], nu), crit)
            if np.any(ramp > 0):
                out[i][b] = np.float32(1.0) + (gain - np.float32(1.0)) * ramp
    return out
