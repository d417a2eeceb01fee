"""Interpretation maps: model-free density modification of two half-maps.

``locband filter`` weights every band linearly by its local SNR (a Wiener-like filter: the
right target for references that are averaged again). An interpretation map removes noise
instead of down-weighting it, restores the local fall-off of the amplitudes, and uses what is
known about macromolecular density in real space. It is non-linear: never average it again or
use it as a refinement reference.

Method (all bands as in :mod:`locband.engine.local`, one voxel grid, cycles/voxel):

1. **Statistics and linear start.** Per band ``b`` the local signal power ``S`` and noise
   power ``N`` of one half (:meth:`~locband.engine._local_stats.LocalStatistics._band_stats`,
   from both halves) give exactly ``locband filter``'s halves and average,
   ``M0 = sum_b q v_b`` with ``q = S / (S + nu)`` (``nu = N`` for a half, ``N / 2`` for the
   average): ``q`` is the band's local half-map FSC.
2. **Priors in real space** (:mod:`locband.engine.priors`), on each map: positivity against
   the solvent level, a flat solvent outside an envelope (the user's mask, or found from the
   map's own raw data smoothed to 20 Å, sized by the molecular mass when given), and no
   small isolated blobs. They turn the map into a non-negative prior density ``rho``.
3. **Back to the bands: local significance weighting.** Within a band's statistics window the
   signal power is known (``S``) but not where it lies. The prior predicts it lies where the
   density is: ``m = (rho^g + f)/(<rho^g>_w + f)`` (``<>_w`` the band's window mean,
   ``g = significance_power``, ``f`` a floor), so the window keeps its signal power. The prior
   is trusted only where the data say little: ``S_x = S (1 + (1 - q)(m - 1))``, and each
   voxel's band value gets the weight ``S_x / (S_x + nu)``, how certain it is to be signal.
   Where the data have no signal (``S = 0``) nothing can be added: the weights redistribute
   what the data support. Three guards keep it so:

   * a band whose weights never reach :data:`~locband.engine._denoise_weighting._SKIP` keeps its linear weights;
   * the non-linear weights of a band never pass more noise power than its linear ones
     (``sum w^2 N <= sum q^2 N``, rescaled otherwise);
   * a weighted band is kept near its own frequencies (:mod:`~locband.engine._denoise_limits`):
     nothing below the previous band's centre (a weight that follows the values would rectify
     them into low frequencies), and above its own centre only as far as the next band is
     significant.

   Steps 2-3 repeat ``cycles`` times (one by default: a second one measured no better).
4. **Local sharpening** (:mod:`locband.engine.sharpen`) in the last cycle: each band's weight
   is multiplied by the gain that undoes the local fall-off, only where the band is significant.
5. **Half-map consistency** (the average only): where the linear halves differ beyond the noise
   the statistics predict (a feature in one half only), the average is pulled to its solvent
   level.
6. **Flat solvent**: outside the envelope (widened and softened) each final map is set to its
   solvent level.

**Honest validation.** Everything taken from both halves together is statistics
(:class:`DenoiseStatistics`); half ``i`` is processed from its own voxel values and those
statistics only, and its envelope comes from its own raw map. Its agreement with the *raw*
other half, shell by shell, then measures what the processing added: with independent
noise, ``FSC(processed 1, raw 2)`` is ``FSC(processed 1, truth) FSC(truth, raw 2)``. Both
directions are returned, next to the raw half-map FSC and the same curves for the linear
filter's halves. The statistics window couples the halves weakly (``1/sqrt(n_eff)``);
``integration/benchmarks/bench_denoise.py`` prints how much this inflates the curves.

**Cost and memory** (as :mod:`locband.engine.local`). The linear start is the linear filter's
own band work (:mod:`~locband.engine._denoise_statistics`). Each band of each map is then made in
two full-size buffers that the whole call reuses (:mod:`~locband.engine._denoise_plan`); weights,
products, the priors, the flat solvent and the consistency test run over slabs of planes on the
denoiser's threads, with no full-size temporaries; the limits touch only the frequencies a band
can keep (:mod:`~locband.engine._denoise_limits`). The FSC curves are per-shell sums made in one
pass over each spectrum (:mod:`~locband.engine._denoise_validation`). At 256^3 the engine takes
about 3 times the linear filter's CPU time (the command with its report about 2 times) and holds
at most about 15 full-size volumes (the mask included).

**Where the code is.** This module holds the planned object (:class:`Denoiser`) and the
one-shot function (:func:`denoise`). Both work from a :class:`~locband.engine._denoise_plan.Plan`
through one module per step: ``_denoise_statistics`` (1), ``_denoise_cycle`` (the cycles of
2-6), ``_denoise_weighting`` (the prior density of 2, and 3) with ``_denoise_limits`` (3's
frequency limits), ``_denoise_consistency`` (5), ``_denoise_solvent`` (the envelope of 2, and 6)
and ``_denoise_validation`` (the FSC curves and the cross-validation).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._checks import PairScale, check_mask, check_positive, check_same_shape, check_volume, pair_scale
from locband.engine._denoise_cycle import cycle
from locband.engine._denoise_plan import Buffers, Plan
from locband.engine._denoise_statistics import DenoiseStatistics, linear_start
from locband.engine._denoise_validation import cross_validate, envelope_noise, raw_sums
from locband.engine._shells import fsc_curve
from locband.engine.denoise_params import DenoiseParams, DenoiseResult
from locband.engine.fsc import check_independent_halves
from locband.engine.local import LocalFilter
from locband.engine.params import ProgressCallback
from locband.engine.units import angstrom_to_cycles, molecular_volume_voxels

__all__ = ["Denoiser", "denoise"]

log = logging.getLogger(__name__)

_ENVELOPE_RESOLUTION_ANGSTROM = 20.0  # default smoothing of the solvent boundary
_SHARPEN_FROM_ANGSTROM = 10.0  # default start of local sharpening (as RELION's auto-B fit)


class Denoiser:
    """Interpretation maps planned for one box, voxel size, mask and settings.

    Create it once and call it with pairs of half-maps of that box; the band layout, grids,
    FFT plans and band volumes are reused.

    Parameters
    ----------
    shape : tuple of int
        Box ``(nz, ny, nx)``, every edge >= 8.
    pixel_size_angstrom : float
        Voxel size (local resolution in Å; default envelope smoothing and sharpening start).
    mask : (nz, ny, nx) array_like, optional
        Soft mask in [0, 1]: the masked FSCs, the statistics' global level, and the flat
        solvent outside it.
    params : DenoiseParams, optional
        Settings (voxel units; see :meth:`DenoiseParams.from_physical`).
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Raises
    ------
    ValueError
        Bad shape, voxel size, mask or settings.
    TypeError
        ``params`` is not a DenoiseParams.
    """

    def __init__(self, shape: tuple[int, ...], *, pixel_size_angstrom: float, mask: npt.ArrayLike | None = None,
                 params: DenoiseParams | None = None, workers: int = 1, backend: str | None = None) -> None:
        params = params if params is not None else DenoiseParams()
        if not isinstance(params, DenoiseParams):
            raise TypeError(f"params must be a DenoiseParams, got {type(params).__name__}")
        px = check_positive(pixel_size_angstrom, name="pixel_size_angstrom")
        self.filter = LocalFilter(shape, pixel_size_angstrom=px, mask=mask, params=params.filter,
                                  workers=workers, backend=backend)
        self.shape, self.layout = self.filter.shape, self.filter.layout
        self.pixel_size_angstrom, self.mask = px, self.filter.mask
        self.workers, self.backend = self.filter.workers, self.filter.backend
        sigma = params.envelope_sigma_voxels
        if sigma is None:
            sigma = 0.187 * _ENVELOPE_RESOLUTION_ANGSTROM / px  # half amplitude at 20 Å
        start = params.sharpen_from
        if start is None:
            start = min(float(angstrom_to_cycles(_SHARPEN_FROM_ANGSTROM, pixel_size_angstrom=px)), 0.5)
        self.params = replace(params, envelope_sigma_voxels=float(sigma), sharpen_from=float(start))
        self._plan = Plan(self.filter, self.params)
        self.calls = 0

    # -- public -------------------------------------------------------------------------
    def __call__(self, half1: npt.ArrayLike, half2: npt.ArrayLike, *, statistics: DenoiseStatistics | None = None,
                 progress: ProgressCallback | None = None) -> DenoiseResult:
        """Make the interpretation map of one pair of half-maps.

        Parameters
        ----------
        half1, half2 : (nz, ny, nx) array_like
            Independent, unfiltered and unmasked half-map reconstructions of the planned shape.
        statistics : DenoiseStatistics, optional
            Use these statistics instead of measuring them from the halves (see
            :meth:`statistics`); each map is then processed from its own voxel values and
            these statistics only.
        progress : callable, optional
            ``progress(fraction, message)``.

        Returns
        -------
        DenoiseResult

        Raises
        ------
        ValueError
            Shapes differ from each other or from the plan, non-finite or constant input,
            statistics of another box.
        """
        return self.denoise_owned([np.asarray(half1), np.asarray(half2)], statistics=statistics, progress=progress)

    def denoise_owned(self, halves: list[npt.NDArray[Any]], *, statistics: DenoiseStatistics | None = None,
                      progress: ProgressCallback | None = None) -> DenoiseResult:
        """As calling the denoiser, with the halves handed over in a list that is emptied.

        The engine then holds the only references and drops the inputs once their spectra are
        computed (memory at large boxes).

        Parameters
        ----------
        halves : list of two (nz, ny, nx) ndarrays
            ``[half1, half2]``; emptied on entry.
        statistics : DenoiseStatistics, optional
            See :meth:`__call__`.
        progress : callable, optional
            ``progress(fraction, message)``.

        Returns
        -------
        DenoiseResult
        """
        if statistics is not None and (statistics.shape != self.shape
                                       or len(statistics.weight) != self.layout.n_bands):
            raise ValueError(f"statistics belong to a box of {statistics.shape} with {len(statistics.weight)} bands, "
                             f"but this Denoiser was planned for {self.shape} with {self.layout.n_bands} bands")
        f1, f2, norm = self._spectra(halves, None if statistics is None else statistics.scale)
        return self._run(f1, f2, norm, progress or (lambda fraction, message: None), statistics)

    def statistics(self, half1: npt.ArrayLike, half2: npt.ArrayLike) -> DenoiseStatistics:
        """Measure the statistics an interpretation map takes from both halves.

        Parameters
        ----------
        half1, half2 : (nz, ny, nx) array_like
            The half-maps.

        Returns
        -------
        DenoiseStatistics
        """
        f1, f2, norm = self._spectra([np.asarray(half1), np.asarray(half2)])
        raw = raw_sums(self._plan, f1, f2)
        check_independent_halves(fsc_curve(raw[0], raw[1], raw[2], self.shape))
        stats, _ = linear_start(self._plan, f1, f2, lambda fraction, message: None, None, maps=False,
                                scale=norm.scale, envelope_noise=envelope_noise(raw))
        return stats

    # -- the work -------------------------------------------------------------------------
    def _spectra(self, halves: list[npt.NDArray[Any]], scale: float | None = None
                 ) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64], PairScale]:
        """Validate two halves (list emptied); their mean-free spectra at unit scale, and that scale.

        As ``locband filter``: each half's mean is removed and both are divided by one power of
        two near their spread (:func:`~locband.engine._checks.pair_scale`), or by ``scale`` when
        given (the scale of given statistics).
        """
        if len(halves) != 2:
            raise ValueError(f"halves must hold exactly two half-maps, got {len(halves)}")
        h1, h2 = check_volume(halves[0], name="half1"), check_volume(halves[1], name="half2")
        halves.clear()
        check_same_shape(h1, h2, names=("half1", "half2"))
        if h1.shape != self.shape:
            raise ValueError(f"half-maps have shape {h1.shape}, but this Denoiser was planned for {self.shape}")
        norm = pair_scale(h1, h2)
        if scale is not None:
            norm = PairScale(offsets=norm.offsets, scale=scale)
        f1 = norm.normalise_spectrum(_fft.rfftn(h1, workers=self.workers, backend=self.backend))
        del h1
        return f1, norm.normalise_spectrum(_fft.rfftn(h2, workers=self.workers, backend=self.backend)), norm

    def _run(self, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64], norm: PairScale,
             report: ProgressCallback, statistics: DenoiseStatistics | None) -> DenoiseResult:
        t0 = time.perf_counter()
        par = self.params
        timings: dict[str, float] = {}
        plan = self._plan
        plan.shells.keep()  # the shells of the spectrum's coefficients serve every FSC of the call
        raw = raw_sums(plan, f1, f2)
        fsc_unmasked = fsc_curve(raw[0], raw[1], raw[2], self.shape)
        check_independent_halves(fsc_unmasked)  # identical or anti-correlated halves: as locband filter
        timings["fsc"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        bufs = Buffers(self.shape, plan.xp)
        stats, base = linear_start(plan, f1, f2, _scaled(report, 0.05, 0.35), statistics, maps=True,
                                   scale=norm.scale, envelope_noise=envelope_noise(raw), spare=bufs)
        timings["statistics"] = time.perf_counter() - t1
        maps, env_volume = base, None
        for k in range(par.cycles):
            t2 = time.perf_counter()
            maps, env_volume = cycle(plan, f1, f2, stats, base, maps, final=k == par.cycles - 1, bufs=bufs,
                                     report=_scaled(report, 0.4 + 0.5 * k / par.cycles, 0.5 / par.cycles))
            timings[f"cycle_{k + 1}"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        report(0.92, "cross-validation")
        del base[2]  # the linear average: nothing needs it any more
        fsc_masked, cross_linear, cross = cross_validate(plan, f1, f2, raw, base, maps, bufs)
        plan.shells.release()
        del f1, f2, base, bufs
        norm.restore(maps[0], maps[1], maps[2])  # each half its mean back, the average the mean of both
        floor = np.float32(1.0 / max(self.shape))
        local_freq, local_res = self.filter._local_resolution(stats.local_frequency, floor)
        timings["cross_validation"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        self.calls += 1
        report(1.0, "done")
        log.debug("interpretation map of %s in %.2f s", self.shape, timings["total"])
        return DenoiseResult(
            full=maps[2], half1=maps[0], half2=maps[1], local_frequency=local_freq,
            local_resolution_angstrom=local_res, envelope_volume_voxels=env_volume,
            pixel_size_angstrom=self.pixel_size_angstrom, fsc_unmasked=fsc_unmasked, fsc_masked=fsc_masked,
            cross_unmasked=cross[0], cross_masked=cross[1], cross_linear_unmasked=cross_linear[0],
            cross_linear_masked=cross_linear[1], bands=self.layout, params=par, timings=timings)


def _scaled(report: ProgressCallback, start: float, span: float) -> ProgressCallback:
    """A progress callback reporting ``start + span * fraction`` to ``report``."""
    def inner(fraction: float, message: str) -> None:
        report(start + span * fraction, message)
    return inner


def denoise(half1: npt.ArrayLike, half2: npt.ArrayLike, *, pixel_size_angstrom: float,
            mask: npt.ArrayLike | None = None, molecular_mass_kda: float | None = None,
            params: DenoiseParams | None = None, workers: int = 1, backend: str | None = None,
            progress: ProgressCallback | None = None) -> DenoiseResult:
    """Interpretation map of two half-maps (one-shot form of :class:`Denoiser`).

    Parameters
    ----------
    half1, half2 : (nz, ny, nx) array_like
        Independent, unfiltered and unmasked half-map reconstructions (same shape).
    pixel_size_angstrom : float
        Voxel size in Å.
    mask : (nz, ny, nx) array_like, optional
        Soft mask in [0, 1]: masked FSCs, and the solvent is flat outside it.
    molecular_mass_kda : float, optional
        Mass of the molecule in kDa; its volume (1.23 Å³/Da) sizes the solvent boundary.
        Overrides ``params.molecular_volume_voxels``.
    params : DenoiseParams, optional
        Settings.
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    DenoiseResult
        The interpretation map and the two halves processed independently, local resolution,
        the raw half-map FSC and the cross-validation FSCs.

    Raises
    ------
    ValueError
        Shapes differ, non-finite or constant input, bad mask or settings.
    TypeError
        Non-numeric input, or ``params`` not a DenoiseParams.

    Notes
    -----
    Non-linear: the output must not be averaged again or used as a refinement reference (use
    :func:`locband.engine.local.local_filter` for that). See :mod:`locband.engine.denoise`
    for the method.
    """
    h1 = check_volume(half1, name="half1")
    h2 = check_volume(half2, name="half2")
    check_same_shape(h1, h2, names=("half1", "half2"))
    if mask is not None:
        mask = check_mask(mask, h1.shape)
    params = params if params is not None else DenoiseParams()
    if molecular_mass_kda is not None:
        mass = check_positive(molecular_mass_kda, name="molecular_mass_kda")
        px = check_positive(pixel_size_angstrom, name="pixel_size_angstrom")
        params = replace(params, molecular_volume_voxels=molecular_volume_voxels(mass, pixel_size_angstrom=px))
    den = Denoiser(h1.shape, pixel_size_angstrom=pixel_size_angstrom, mask=mask, params=params,
                   workers=workers, backend=backend)
    return den.denoise_owned([h1, h2], progress=progress)
