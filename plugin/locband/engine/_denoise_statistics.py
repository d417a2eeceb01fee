"""The statistics of an interpretation map and its linear start (step 1 of :mod:`locband.engine.denoise`).

Per band ``b`` the local signal power ``S`` and noise power ``N`` of one half
(:meth:`~locband.engine._local_stats.LocalStatistics._band_stats`, from both halves) give exactly
``locband filter``'s halves and average, ``M0 = sum_b q v_b`` with ``q = S / (S + nu)``
(``nu = N`` for a half, ``N / 2`` for the average): ``q`` is the band's local half-map FSC.
Everything taken from both halves together is kept in :class:`DenoiseStatistics`.

**Cost.** The linear start is the linear filter's own band work
(:class:`~locband.engine._outputs._Outputs`); the full-size buffers its sums leave spare go on to
the density modification (:class:`~locband.engine._denoise_plan.Buffers`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from locband.engine._crossing import _Crossing
from locband.engine._denoise_plan import Buffers, Plan, Vol, resampled, wiener
from locband.engine._outputs import _Outputs
from locband.engine.params import ProgressCallback

__all__ = ["DenoiseStatistics", "linear_start"]


@dataclass(frozen=True)
class DenoiseStatistics:
    """Everything an interpretation map takes from both halves together (all of it statistics).

    Processing one map (half 1, half 2 or their average) uses its own voxel values and these
    statistics only, never the other half's voxel values. Made by
    :meth:`~locband.engine.denoise.Denoiser.statistics` (or during a call); give it back to a
    call to process other maps with the same statistics.

    Attributes
    ----------
    shape : tuple of int
        Box the statistics belong to.
    weight, noise : tuple of ndarray
        Per band, on the band's statistics grid: the half's linear weight (local half-map FSC)
        ``S / (S + N)`` and the noise power ``N`` of one half.
    signal_coarse, noise_coarse : tuple of ndarray
        ``S`` and ``N`` of every band on one common coarse grid.
    residual_variance : tuple of three ndarray
        Noise variance left in the linear filter's half 1, half 2 and average (coarse grid).
    local_frequency : ndarray
        Local resolution (cycles/voxel) on the coarse grid.
    envelope_noise_variance : float
        Noise variance of one raw half after the envelope's smoothing.
    resolution_voxels : float
        Resolution of the particle in voxels: the median local resolution where there is
        signal (inside the mask when there is one).
    scale : float
        The common scale the halves were divided by (as ``locband filter`` does, see
        :class:`~locband.engine._checks.PairScale`): the statistics are in its units, so maps
        processed with them are divided by it too (each keeps its own mean).
    """

    shape: tuple[int, ...]
    weight: tuple[Vol, ...]
    noise: tuple[Vol, ...]
    signal_coarse: tuple[Vol, ...]
    noise_coarse: tuple[Vol, ...]
    residual_variance: tuple[Vol, Vol, Vol]
    local_frequency: Vol
    envelope_noise_variance: float
    resolution_voxels: float
    scale: float


def linear_start(plan: Plan, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64], report: ProgressCallback,
                  statistics: DenoiseStatistics | None, *, maps: bool, scale: float, envelope_noise: float,
                  spare: Buffers | None = None) -> tuple[DenoiseStatistics, list[Vol]]:
    """The statistics (measured unless given) and the linear filter's three maps.

    The linear maps are exactly ``locband filter``'s, made as it makes them
    (:class:`~locband.engine._outputs._Outputs`): per band the half weight ``w = S / (S + N)``
    interpolated from its statistics grid, the average's ``2w/(1+w)``, band maps made in
    reused buffers and weighted over slabs. The full-size buffers that the sums leave spare
    go to ``spare`` for the density modification.
    """
    lay, lf = plan.layout, plan.filter
    n = lay.n_bands
    coarse = lf.stats_shape
    weight, noise_b, sig_c, noise_c = [], [], [], []
    residual = [np.zeros(coarse, np.float32) for _ in range(3)]
    crossing = _Crossing(coarse, lay.centres, plan.params.filter.criterion)
    outputs = _Outputs(plan.shape, lay.grid_shapes, workers=plan.workers, backend=plan.backend) if maps else None
    cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
    for b in range(n):
        grid = lay.grid_shapes[b]
        bufs = outputs.map_buffers(grid) if outputs is not None else None
        if statistics is None:
            _, _, sig, noise = lf._band_stats(b, f1, f2, maps=bufs)
            weight.append(wiener(sig, noise))
            noise_b.append(noise)
            sc, nc = resampled(sig, coarse), resampled(noise, coarse)
            sig_c.append(sc)
            noise_c.append(nc)
            crossing.update(b, sc, nc)
            for i, nu in enumerate((nc, nc, nc * np.float32(0.5))):
                residual[i] += wiener(sc, nu) ** 2 * nu
            del sig, noise
            w = weight[b]
        elif bufs is not None:
            lf._band_maps(b, f1, f2, bufs)
            w = statistics.weight[b]
        if outputs is not None and bufs is not None:
            outputs.add_weighted(grid, bufs, w)
        del bufs
        report(float(cost[b] / cost[-1]), f"statistics: band {b + 1}/{n}")
    linear = list(outputs.finish()) if outputs is not None else []
    if outputs is not None and spare is not None:
        spare.full = outputs.spare[:2]
    del outputs
    if statistics is not None:
        return statistics, linear
    stats = DenoiseStatistics(
        shape=plan.shape, weight=tuple(weight), noise=tuple(noise_b), signal_coarse=tuple(sig_c),
        noise_coarse=tuple(noise_c), residual_variance=(residual[0], residual[1], residual[2]),
        local_frequency=crossing.frequency, envelope_noise_variance=envelope_noise,
        resolution_voxels=_particle_resolution(plan, crossing.frequency), scale=scale)
    return stats, linear


def _particle_resolution(plan: Plan, frequency: Vol) -> float:
    """Resolution of the particle in voxels: the median local resolution where there is signal.

    Inside the mask when there is one, else where the local resolution (``frequency``, on the
    coarse grid) is finer than two voxels' worth of the box; clipped to [2, smallest edge / 4].
    """
    m = plan.filter._small_mask(plan.filter.stats_shape)
    has = (m > 0.5) if m is not None else (frequency > 2.0 / min(plan.shape))
    freq = frequency[has] if has.any() else frequency
    res = 1.0 / max(float(np.median(freq)), 1e-6)
    return float(np.clip(res, 2.0, min(plan.shape) / 4))
