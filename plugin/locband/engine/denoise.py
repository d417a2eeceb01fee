"""Interpretation maps: model-free density modification of two half-maps.

``locband filter`` weights every band linearly by its local SNR (a Wiener-like filter: the
right target for references that are averaged again). An interpretation map removes noise
instead of down-weighting it, restores the local fall-off of the amplitudes, and uses what is
known about macromolecular density in real space. It is non-linear: never average it again or
use it as a refinement reference.

Method (all bands as in :mod:`locband.engine.local`, one voxel grid, cycles/voxel):

1. **Statistics and linear start.** Per band ``b`` the local signal power ``S`` and noise
   power ``N`` of one half (:meth:`LocalFilter._band_stats`, from both halves) give exactly
   ``locband filter``'s halves and average, ``M0 = sum_b q v_b`` with ``q = S / (S + nu)``
   (``nu = N`` for a half, ``N / 2`` for the average): ``q`` is the band's local half-map FSC.
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

   * a band whose weights never reach ``_SKIP`` keeps its linear weights;
   * the non-linear weights of a band never pass more noise power than its linear ones
     (``sum w^2 N <= sum q^2 N``, rescaled otherwise);
   * a weighted band is kept near its own frequencies (:class:`_Limits`): nothing below the
     previous band's centre (a weight that follows the values would rectify them into low
     frequencies), and above its own centre only as far as the next band is significant.

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
own band work (``_Outputs``). Each band of each map is then made in two full-size buffers that
the whole call reuses (band map, then weights and the weighted band, transformed in place);
weights, products, the priors, the flat solvent and the consistency test run over slabs of
planes on the denoiser's threads, with no full-size temporaries; the limits touch only the
frequencies a band can keep. The FSC curves (raw, masked, and the eight cross-validation
curves) are per-shell sums made in one pass over each spectrum (:mod:`locband.engine._shells`).
At 256^3 the engine takes about 3 times the linear filter's CPU time (the command with its
report about 2 times) and holds at most about 15 full-size volumes (the mask included).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _device, _fft, _slabs
from locband.engine._checks import PairScale, check_mask, check_positive, check_same_shape, check_volume, pair_scale
from locband.engine._grid import (
    crop_blocks,
    crop_indices,
    crop_rows,
    frequency_squared,
    frequency_squared_rows,
    rfft_shape,
)
from locband.engine._interp import downsample_rows, resample_linear, resample_rows
from locband.engine._shells import ShellSums, fsc_curve
from locband.engine.bands import gaussian_window
from locband.engine.fsc import check_independent_halves, fsc_solvent_level
from locband.engine.local import LocalFilter, _Crossing, _Outputs
from locband.engine.params import BandLayout, DenoiseParams, DenoiseResult, FSCCurve
from locband.engine.priors import EnvelopeSpec, envelope_from_map, prior_density, solvent_level
from locband.engine.priors import gaussian_smooth as prior_smooth
from locband.engine.sharpen import band_volumes, local_bfactor, sharpening_gain, significance_ramp
from locband.engine.units import angstrom_to_cycles, molecular_volume_voxels

__all__ = ["Denoiser", "DenoiseStatistics", "denoise"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]
_Index = tuple[npt.NDArray[np.intp], ...]
_Vol = npt.NDArray[np.float32]

_ENVELOPE_RESOLUTION_ANGSTROM = 20.0  # default smoothing of the solvent boundary
_SHARPEN_FROM_ANGSTROM = 10.0  # default start of local sharpening (as RELION's auto-B fit)
_ENVELOPE_Z = 3.0  # solvent boundary: smoothed map this many noise SDs above the solvent level
_BLOB_Z = 3.0  # blobs: connected density this many residual-noise SDs above the solvent level
_SKIP = 0.02  # a band whose linear weight stays below this everywhere keeps its linear weights
_CONSISTENCY_Z2 = 10.0  # the average is trusted where the halves' local chi-square stays below this
_CONSISTENCY_MIN_SIGMA = 1.5  # voxels: the consistency test's smallest smoothing
_FULL_SPREAD = 0.5  # a band may spread fully into the next one when that holds this signal fraction


class _Buffers:
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


class _Limits:
    """How much of each weighted band is kept at each frequency (see :meth:`Denoiser._reweigh`).

    Band ``b`` keeps only frequencies above the previous centre; between its own centre and
    the next one its content is scaled by ``upper[b]``; beyond the next centre it is cut.
    """

    def __init__(self, shape: tuple[int, ...], layout: BandLayout, upper: list[float]) -> None:
        self.shape, self.layout, self.upper = shape, layout, upper
        self._steps = tuple(1.0 / n for n in shape)

    def kept(self, b: int) -> tuple[int, ...]:
        """The grid of band ``b``'s spectrum that can be kept: every frequency below the next centre.

        A Fourier crop of the band's grid: per axis the frequencies ``|k| <= c n + 1`` (``c`` the
        next centre, ``n`` the box's edge; one more than needed, so that the factor alone decides
        at the boundary). Beyond it :meth:`rows` is 0.
        """
        c, grid = self.layout.centres, self.layout.grid_shapes[b]
        if b + 1 >= len(c):
            return grid
        out = []
        for axis, (n, g) in enumerate(zip(self.shape, grid, strict=True)):
            p = int(math.floor(c[b + 1] * n)) + 2  # kept non-negative frequencies 0..p-1
            m = 2 * p - 2 if axis == len(grid) - 1 else 2 * p - 1  # x: rfft columns 0..p-1
            out.append(min(g, m))
        return tuple(out)

    def rows(self, b: int, grid: tuple[int, ...], z0: int, z1: int) -> _Vol:
        """The factor (0, ``upper[b]`` or 1) on planes ``z0:z1`` of band ``b``'s spectrum on ``grid``."""
        c = self.layout.centres
        s2 = frequency_squared_rows(grid, self._steps, z0, z1)
        out = np.ones(s2.shape, np.float32)
        if b > 0:
            out[s2 <= np.float32(c[b - 1]) ** 2] = 0
        if b + 1 < len(c):
            hi = s2 >= np.float32(c[b + 1]) ** 2
            if self.upper[b] < 1.0:
                mid = s2 > np.float32(c[b]) ** 2
                mid &= ~hi
                out[mid] = np.float32(self.upper[b])
            out[hi] = 0
        return out

    def accumulate(self, b: int, spec: Any, total: Any, *, workers: int, xp: Any = np) -> None:
        """``total[crop] += limited band spectrum``: band ``b``'s weighted spectrum (its grid) added to a full one.

        A weighted band spreads beyond the band's frequencies. Spreading below the band would
        rectify: the weight is high where the band's values are, so their product has a mean
        and low-frequency parts that no data support; spreading above the band could put
        content where the data have none (extrapolation). Both are cut here, slab by slab, over
        the frequencies that can be kept only (:meth:`kept`: about a third of a band's grid).
        """
        grid, kept = self.layout.grid_shapes[b], self.kept(b)
        mxh = kept[2] // 2 + 1
        y_box, y_band = crop_rows(self.shape[1], kept[1], 0, kept[1]), crop_rows(grid[1], kept[1], 0, kept[1])

        def work(z0: int, z1: int) -> None:
            f = _device.to_device(self.rows(b, kept, z0, z1), xp)
            for (zt, zk), (zb, _) in zip(crop_rows(self.shape[0], kept[0], z0, z1), crop_rows(grid[0], kept[0], z0, z1),
                                         strict=True):
                fz = f[zk.start - z0:zk.stop - z0]
                for (yt, yk), (yb, _) in zip(y_box, y_band, strict=True):
                    total[zt, yt, :mxh] += spec[zb, yb, :mxh] * fz[:, yk]

        _slabs.run(work, kept[0], rows=_slabs.slab_rows(kept[0], kept[1] * mxh, xp), workers=workers)


@dataclass
class _Prior:
    """One map's prior density ``rho**power``, its mean inside the envelope, and its window means."""

    rho: _Vol
    scale: float
    windows: list[_Vol]


@dataclass(frozen=True)
class DenoiseStatistics:
    """Everything an interpretation map takes from both halves together (all of it statistics).

    Processing one map (half 1, half 2 or their average) uses its own voxel values and these
    statistics only, never the other half's voxel values. Made by :meth:`Denoiser.statistics`
    (or during a call); give it back to a call to process other maps with the same statistics.

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
    weight: tuple[_Vol, ...]
    noise: tuple[_Vol, ...]
    signal_coarse: tuple[_Vol, ...]
    noise_coarse: tuple[_Vol, ...]
    residual_variance: tuple[_Vol, _Vol, _Vol]
    local_frequency: _Vol
    envelope_noise_variance: float
    resolution_voxels: float
    scale: float


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
        self._shells = ShellSums(self.shape, workers=self.workers)
        self._xp = np  # the array namespace of new array code (NumPy; the linear filter's own on a GPU path)
        self._volumes: npt.NDArray[np.float64] | None = None
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
        raw = self._raw_sums(f1, f2)
        check_independent_halves(fsc_curve(raw[0], raw[1], raw[2], self.shape))
        stats, _ = self._linear_start(f1, f2, lambda fraction, message: None, None, maps=False, scale=norm.scale,
                                      envelope_noise=self._envelope_noise(raw))
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
        self._shells.keep()  # the shells of the spectrum's coefficients serve every FSC of the call
        raw = self._raw_sums(f1, f2)
        fsc_unmasked = fsc_curve(raw[0], raw[1], raw[2], self.shape)
        check_independent_halves(fsc_unmasked)  # identical or anti-correlated halves: as locband filter
        timings["fsc"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        bufs = _Buffers(self.shape, self._xp)
        stats, base = self._linear_start(f1, f2, _scaled(report, 0.05, 0.35), statistics, maps=True,
                                         scale=norm.scale, envelope_noise=self._envelope_noise(raw), spare=bufs)
        timings["statistics"] = time.perf_counter() - t1
        maps, env_volume = base, None
        for k in range(par.cycles):
            t2 = time.perf_counter()
            maps, env_volume = self._cycle(f1, f2, stats, base, maps, final=k == par.cycles - 1, bufs=bufs,
                                           report=_scaled(report, 0.4 + 0.5 * k / par.cycles, 0.5 / par.cycles))
            timings[f"cycle_{k + 1}"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        report(0.92, "cross-validation")
        del base[2]  # the linear average: nothing needs it any more
        fsc_masked, cross_linear, cross = self._validate(f1, f2, raw, base, maps, bufs)
        self._shells.release()
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

    # -- FSC curves: per-shell sums of the spectra (locband.engine._shells) ----------------
    def _raw_sums(self, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64]) -> npt.NDArray[np.float64]:
        """Per-shell sums of the raw halves: ``Re(F1 conj F2)``, ``|F1|^2``, ``|F2|^2`` and the envelope's noise.

        The fourth row sums ``|F1 - F2|^2 g^2`` (``g`` the envelope's Gaussian smoothing): half of
        its total is the noise variance of one raw half after that smoothing.
        """
        sigma = float(self.params.envelope_sigma_voxels or 1.0)
        k = np.float32(-2.0 * np.pi ** 2 * sigma ** 2)

        def produce(z0: int, z1: int, s2: Any) -> list[Any]:
            a, b = f1[z0:z1], f2[z0:z1]
            diff = a - b
            power = diff.real ** 2 + diff.imag ** 2
            g = np.exp(k * s2)
            power *= g * g
            return [(a * np.conj(b)).real, a.real ** 2 + a.imag ** 2, b.real ** 2 + b.imag ** 2, power]

        return self._shells.sums(produce, 4)

    @staticmethod
    def _envelope_noise(raw: npt.NDArray[np.float64]) -> float:
        """Noise variance of one raw half after the envelope's smoothing (see :meth:`_raw_sums`)."""
        # |F1 - F2|^2 / 2 per coefficient is the noise power of one half
        return 0.5 * float(raw[3].sum())

    def _masked_raw(self, f: npt.NDArray[np.complex64], into: npt.NDArray[np.complex64] | None = None
                    ) -> npt.NDArray[np.complex64]:
        """Spectrum of a raw half, solvent level removed, times the mask (as ``locband filter``'s masked FSC).

        Made in ``into`` (a spectrum no longer needed) when given, else in a new buffer.
        """
        assert self.mask is not None
        if into is None:
            buf = f.copy()
        else:
            buf = into
            np.copyto(buf, f)
        vol = _fft.irfftn(buf, self.shape, overwrite_input=True, out=_fft.real_view(buf, self.shape),
                          workers=self.workers, backend=self.backend)
        self._masked_spectra(vol, [buf], unmasked=False)
        return buf

    def _masked_spectra(self, vol: _Vol, out: list[Any], *, unmasked: bool) -> None:
        """Spectra of ``vol`` (with ``unmasked``) and of ``masked_for_fsc(vol, mask)``, into ``out`` (in place allowed).

        The mean of the masked map carries no signal: its coefficient is set to 0, as for
        ``locband filter``'s masked FSC.
        """
        mask = self.mask
        assert mask is not None
        level = np.float32(fsc_solvent_level(vol, mask))

        def produce(z0: int, z1: int) -> list[_Vol]:
            masked = vol[z0:z1] - level
            masked *= mask[z0:z1]
            return [vol[z0:z1], masked] if unmasked else [masked]

        _fft.rfftn_slabs(produce, self.shape, out, workers=self.workers, backend=self.backend)
        out[-1][(0,) * out[-1].ndim] = 0

    def _cross_sums(self, vol: _Vol, raw: npt.NDArray[np.complex64], raw_masked: npt.NDArray[np.complex64] | None,
                    bufs: _Buffers) -> npt.NDArray[np.float64]:
        """Per-shell sums of a processed half against a raw other half: ``Re(P conj F)``, ``|P|^2`` (masked too).

        Four rows with a mask (unmasked pair, then the masked pair), two without.
        """
        spec, masked = bufs.pair(self.shape)
        if raw_masked is None:
            _fft.rfftn_slabs(lambda z0, z1: [vol[z0:z1]], self.shape, [spec], workers=self.workers,
                             backend=self.backend)
            pairs = [(spec, raw)]
        else:
            self._masked_spectra(vol, [spec, masked], unmasked=True)
            pairs = [(spec, raw), (masked, raw_masked)]
        return self._pair_sums(pairs, both_powers=False)

    def _pair_sums(self, pairs: list[tuple[Any, Any]], *, both_powers: bool) -> npt.NDArray[np.float64]:
        """Per pair ``(P, F)`` of spectra the per-shell sums of ``Re(P conj F)``, ``|P|^2`` (and ``|F|^2``)."""
        def produce(z0: int, z1: int, s2: Any) -> list[Any]:
            out = []
            for p, f in pairs:
                a, b = p[z0:z1], f[z0:z1]
                out += [(a * np.conj(b)).real, a.real ** 2 + a.imag ** 2]
                if both_powers:
                    out.append(b.real ** 2 + b.imag ** 2)
            return out

        return self._shells.sums(produce, (3 if both_powers else 2) * len(pairs))

    def _validate(self, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64], raw: npt.NDArray[np.float64],
                  linear: list[_Vol], maps: list[_Vol], bufs: _Buffers
                  ) -> tuple[FSCCurve | None, tuple[tuple[FSCCurve, FSCCurve], tuple[FSCCurve, FSCCurve] | None],
                             tuple[tuple[FSCCurve, FSCCurve], tuple[FSCCurve, FSCCurve] | None]]:
        """The masked raw FSC, and the FSCs of each processed half (linear, then denoised) with the raw other half.

        Half 2's masked raw spectrum is made first, for the half-1 curves; half 1's is then made in
        the memory of half 2's raw spectrum (``f2`` is overwritten: nothing needs it any more).
        The processed halves' spectra are made in the two buffers of ``bufs``.
        """
        masked = self.mask is not None
        m2 = self._masked_raw(f2) if masked else None
        sums = {("linear", 0): self._cross_sums(linear[0], f2, m2, bufs),
                ("denoised", 0): self._cross_sums(maps[0], f2, m2, bufs)}
        m1 = self._masked_raw(f1, into=f2) if masked else None  # half 2's raw spectrum is not needed any more
        fsc_masked = None
        if m1 is not None and m2 is not None:
            rm = self._pair_sums([(m1, m2)], both_powers=True)
            fsc_masked = fsc_curve(rm[0], rm[1], rm[2], self.shape)
            p_masked = (rm[1], rm[2])
        del m2
        sums[("linear", 1)] = self._cross_sums(linear[1], f1, m1, bufs)
        sums[("denoised", 1)] = self._cross_sums(maps[1], f1, m1, bufs)
        del m1
        bufs.release()
        p_raw = (raw[1], raw[2])
        out = []
        for kind in ("linear", "denoised"):
            # half 1 against raw half 2, half 2 against raw half 1
            un = tuple(fsc_curve(sums[kind, i][0], sums[kind, i][1], p_raw[1 - i], self.shape) for i in (0, 1))
            ma = None if not masked else tuple(
                fsc_curve(sums[kind, i][2], sums[kind, i][3], p_masked[1 - i], self.shape) for i in (0, 1))
            out.append((un, ma))
        return fsc_masked, out[0], out[1]  # type: ignore[return-value]

    def _smoothed(self, spectra: tuple[npt.NDArray[np.complex64], ...]) -> _Vol:
        """The map of ``spectra`` (one, or two for the mean of the halves) after the envelope's smoothing.

        The smoothing passes nothing beyond about ``0.7 / sigma`` cycles/voxel, so the smoothed
        map is made on a Fourier-cropped grid and interpolated back (8 times cheaper at 20 Å).
        """
        sigma = float(self.params.envelope_sigma_voxels or 1.0)
        small = tuple(min(n, _fft.next_fast_len(max(8, math.ceil(2 * 0.7 / sigma * n)))) for n in self.shape)
        idx = np.ix_(*crop_indices(self.shape, small))
        part = spectra[0][idx]
        if len(spectra) > 1:  # the mean of the halves: (F1 + F2) / 2
            part += spectra[1][idx]
            part *= np.float32(0.5)
        s2 = frequency_squared(small, tuple(1.0 / n for n in self.shape))
        part *= np.exp(np.float32(-2.0 * np.pi ** 2 * sigma ** 2) * s2)
        out = _fft.irfftn(part, small, overwrite_input=True, workers=self.workers, backend=self.backend)
        return _resampled(out, self.shape)

    def _envelope(self, spectra: tuple[npt.NDArray[np.complex64], ...], noise_variance: float) -> _Vol | None:
        """Solvent boundary of one map from its own (raw) spectrum (two for the average).

        None without solvent flattening. The user's mask, when given, is the envelope (times
        the volume-sized envelope when a molecular volume is given).
        """
        par = self.params
        if not par.solvent_flattening:
            return None
        if self.mask is not None and par.molecular_volume_voxels is None:
            return self.mask
        smoothed = self._smoothed(spectra)
        if self.mask is not None:
            smoothed *= self.mask
        spec_ = EnvelopeSpec(sigma_voxels=float(par.envelope_sigma_voxels or 1.0), noise_sd=math.sqrt(noise_variance),
                             z=_ENVELOPE_Z, volume_voxels=par.molecular_volume_voxels)
        env = envelope_from_map(smoothed, spec_, connectivity=par.connectivity, workers=self.workers,
                                backend=self.backend)
        if self.mask is not None:
            env *= self.mask
        return env

    def _linear_start(self, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64], report: ProgressCallback,
                      statistics: DenoiseStatistics | None, *, maps: bool, scale: float, envelope_noise: float,
                      spare: _Buffers | None = None) -> tuple[DenoiseStatistics, list[_Vol]]:
        """The statistics (measured unless given) and the linear filter's three maps.

        The linear maps are exactly ``locband filter``'s, made as it makes them
        (:class:`~locband.engine.local._Outputs`): per band the half weight ``w = S / (S + N)``
        interpolated from its statistics grid, the average's ``2w/(1+w)``, band maps made in
        reused buffers and weighted over slabs. The full-size buffers that the sums leave spare
        go to ``spare`` for the density modification.
        """
        lay, lf = self.layout, self.filter
        n = lay.n_bands
        coarse = lf.stats_shape
        weight, noise_b, sig_c, noise_c = [], [], [], []
        residual = [np.zeros(coarse, np.float32) for _ in range(3)]
        crossing = _Crossing(coarse, lay.centres, self.params.filter.criterion)
        outputs = _Outputs(self.shape, lay.grid_shapes, workers=self.workers, backend=self.backend) if maps else None
        cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
        for b in range(n):
            grid = lay.grid_shapes[b]
            bufs = outputs.map_buffers(grid) if outputs is not None else None
            if statistics is None:
                _, _, sig, noise = lf._band_stats(b, f1, f2, maps=bufs)
                weight.append(_wiener(sig, noise))
                noise_b.append(noise)
                sc, nc = _resampled(sig, coarse), _resampled(noise, coarse)
                sig_c.append(sc)
                noise_c.append(nc)
                crossing.update(b, sc, nc)
                for i, nu in enumerate((nc, nc, nc * np.float32(0.5))):
                    residual[i] += _wiener(sc, nu) ** 2 * nu
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
        # the resolution of the particle: median local resolution where there is signal (inside the
        # mask when there is one)
        m = lf._small_mask(coarse)
        has = (m > 0.5) if m is not None else (crossing.frequency > 2.0 / min(self.shape))
        freq = crossing.frequency[has] if has.any() else crossing.frequency
        res = 1.0 / max(float(np.median(freq)), 1e-6)
        stats = DenoiseStatistics(
            shape=self.shape, weight=tuple(weight), noise=tuple(noise_b), signal_coarse=tuple(sig_c),
            noise_coarse=tuple(noise_c), residual_variance=(residual[0], residual[1], residual[2]),
            local_frequency=crossing.frequency, envelope_noise_variance=envelope_noise,
            resolution_voxels=float(np.clip(res, 2.0, min(self.shape) / 4)), scale=scale)
        return stats, linear

    # -- one density-modification cycle ----------------------------------------------------
    def _prior(self, vol: _Vol, envelope: _Vol | None, residual_var: _Vol, res_vox: float,
               out: _Vol | None = None) -> _Prior | None:
        """The priors' density of one map, as ``rho**power`` with its scale and window means (``rho`` in ``out``)."""
        par, lay = self.params, self.layout
        sd = math.sqrt(max(float(np.percentile(residual_var, 95)), 0.0))
        rho, _ = prior_density(vol, envelope=envelope, positivity=par.positivity, connectivity=par.connectivity,
                               blob_threshold=_BLOB_Z * sd, blob_min_voxels=4.0 / 3.0 * math.pi * (2 * res_vox) ** 3,
                               blob_distance_voxels=2 * res_vox, workers=self.workers, backend=self.backend, out=out)
        rho **= np.float32(par.significance_power)
        scale = _mean_where(rho, envelope)
        if not scale > 0:
            return None
        # the windows pass nothing beyond the largest statistics grid: the spectrum of rho is
        # computed only there, and each band's window mean is cropped from it
        stats = lay.stats_shapes[1:]
        top = tuple(max(g[k] for g in stats) for k in range(3))
        spec = _fft.rfftn_cropped(lambda z0, z1: [rho[z0:z1]], self.shape, top, count=1, workers=self.workers,
                                  backend=self.backend)[0]
        steps = tuple(1.0 / n for n in self.shape)
        windows: list[_Vol] = [np.zeros(0, np.float32)]
        for b in range(1, lay.n_bands):
            small = lay.stats_shapes[b]
            part = np.empty(rfft_shape(small), np.complex64)
            for in_top, in_small in crop_blocks(top, small):
                part[in_small] = spec[in_top]
            part *= gaussian_window(frequency_squared(small, steps), lay.sigma_voxels[b])
            windows.append(_fft.irfftn(part, small, overwrite_input=True, workers=self.workers, backend=self.backend))
        return _Prior(rho=rho, scale=scale, windows=windows)

    def _gains(self, stats: DenoiseStatistics) -> list[list[_Vol | None]]:
        """Per map and band, the sharpening gain on the coarse grid (None: 1 everywhere)."""
        par, lay = self.params, self.layout
        n = lay.n_bands
        out: list[list[_Vol | None]] = [[None] * n for _ in range(3)]
        if par.sharpen == "off":
            return out
        sig = np.stack(stats.signal_coarse)
        noise = np.stack(stats.noise_coarse)
        crit = par.filter.criterion
        if par.sharpen == "local":
            if self._volumes is None:
                self._volumes = band_volumes(self.shape, lay.centres)
            start = float(par.sharpen_from or 0.0)
            bmap: _Vol | float = local_bfactor(sig, _wiener(sig, noise * np.float32(0.5)), centres=lay.centres,
                                               volumes=self._volumes, fit_from=start, criterion=crit)
        else:
            bmap, start = -par.bfactor_voxels, 0.0  # RELION's sign: a negative B sharpens
        for b in range(n):
            gain = sharpening_gain(bmap, lay.centres[b], start=start, max_gain=par.max_gain)
            if np.all(gain == 1):
                continue
            for i, nu in enumerate((noise[b], noise[b], noise[b] * np.float32(0.5))):
                ramp = significance_ramp(_wiener(sig[b], nu), crit)
                if np.any(ramp > 0):
                    out[i][b] = np.float32(1.0) + (gain - np.float32(1.0)) * ramp
        return out

    def _upper(self, stats: DenoiseStatistics) -> list[float]:
        """Per band, how far its spread may reach into the next band: that band's significance.

        The next band's signal fraction ``sum S / sum (S + N/2)`` (within the mask, if any)
        relative to 0.5, clipped to [0, 1]: a band whose neighbour above has no signal may
        not spread into it.
        """
        lay = self.layout
        m = self.filter._small_mask(self.filter.stats_shape)
        out = []
        for b in range(lay.n_bands):
            if b + 1 >= lay.n_bands:
                out.append(1.0)
                continue
            sig, noise = stats.signal_coarse[b + 1], stats.noise_coarse[b + 1] * np.float32(0.5)
            wts = m if m is not None else np.ones_like(sig)
            frac = float((sig * wts).sum()) / max(float(((sig + noise) * wts).sum()), 1e-30)
            out.append(float(np.clip(frac / _FULL_SPREAD, 0.0, 1.0)))
        return out

    def _cycle(self, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64], stats: DenoiseStatistics,
               base: list[_Vol], maps: list[_Vol], *, final: bool, bufs: _Buffers,
               report: ProgressCallback) -> tuple[list[_Vol], float | None]:
        """Priors on each map, then its bands reweighted; returns ``base`` plus the changes.

        The maps are done one after the other (half 1, half 2, average) so that only one
        map's envelope, prior and temporaries are held at a time. Also returns the number of
        voxels inside the average's envelope (None without one).
        """
        par, lay = self.params, self.layout
        gains: list[list[_Vol | None]] = self._gains(stats) if final else [[None] * lay.n_bands for _ in range(3)]
        limits = _Limits(self.shape, lay, self._upper(stats))
        cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
        out: list[_Vol] = []
        env_volume = None
        soft: dict[str, _Vol] = {}  # the widened mask of _flatten, made once
        rho: _Vol | None = None  # one buffer for the three maps' prior densities
        for i in range(3):
            spectra = (f1,) if i == 0 else (f2,) if i == 1 else (f1, f2)
            # the average's spectrum is twice the mean's: its smoothed map is the mean's, its noise
            # is half a half's
            env = self._envelope(spectra, stats.envelope_noise_variance / (2.0 if i == 2 else 1.0))
            if env is not None and i == 2:
                env_volume = float(np.count_nonzero(env > 0.5))
            prior = None
            if par.significance:
                if rho is None:
                    rho = np.empty(self.shape, np.float32)
                prior = self._prior(maps[i], env, stats.residual_variance[i], stats.resolution_voxels, out=rho)
            acc = np.zeros(rfft_shape(self.shape), np.complex64)
            for b in range(1, lay.n_bands):
                if self._changes(i, b, stats, gains) and (prior is not None or gains[i][b] is not None):
                    self._reweigh(i, b, spectra, stats, prior, gains[i][b], limits, acc, bufs)
                report((i + cost[b] / cost[-1]) / 3, f"density modification: map {i + 1}/3, band {b + 1}")
            del prior
            new = self._finish(acc, base[i])
            del acc
            if final and i == 2 and par.consistency:
                new = self._agree(new, base, env, stats, bufs.pair(self.shape)[0])
            if final and env is not None:
                new = self._flatten(new, env, soft)
            del env
            out.append(new)
        return out, env_volume

    def _finish(self, acc: npt.NDArray[np.complex64], base: _Vol) -> _Vol:
        """``base`` plus the map of the spectrum ``acc``, made in ``acc``'s memory (consumed).

        The inverse transform runs in place (rows padded to ``2 (nx // 2 + 1)`` values); the
        sum is then written to the start of the same memory as a C-contiguous volume, slab
        after slab in increasing order: a slab's padded rows start at or after where its
        contiguous rows go, so no slab overwrites rows that a later one still reads.
        """
        shape = self.shape
        padded = _fft.irfftn(acc, shape, overwrite_input=True, out=_fft.real_view(acc, shape), workers=self.workers,
                             backend=self.backend)
        vol = acc.view(np.float32).reshape(-1)[:int(np.prod(shape))].reshape(shape)
        rows = _slabs.slab_rows(shape[0], shape[1] * shape[2], np)
        for z0, z1 in _slabs.row_slabs(shape[0], rows):
            vol[z0:z1] = padded[z0:z1] + base[z0:z1]
        return vol

    def _flatten(self, vol: _Vol, envelope: _Vol, cache: dict[str, _Vol] | None = None) -> _Vol:
        """The solvent of one final map flat at its level, outside a widened envelope (in place).

        The envelope is widened and softened before use: a tight edge cuts the tails of surface
        density, and a sharp one sharpens the particle's boundary, which puts content above the
        data's resolution (measured: with the envelope's own edge, probe (a) of
        ``bench_denoise`` found FSC 0.04 with the truth above the cut, at the linear filter's
        0.01 with this one).
        """
        level = np.float32(solvent_level(vol, envelope))
        keep = cache is not None and envelope is self.mask  # the same for every map: made once per call
        soft = cache.get("mask") if cache is not None and keep else None
        if soft is None:
            soft = self._widened(envelope)
            if cache is not None and keep:
                cache["mask"] = soft

        def work(z0: int, z1: int) -> None:
            factor = resample_rows(soft, self.shape, z0, z1)  # on the full grid, as _resampled would
            factor *= np.float32(2.0)
            np.clip(factor, 0.0, 1.0, out=factor)
            part = vol[z0:z1]
            part -= level
            part *= factor
            part += level

        self._run_slabs(work)
        return vol

    def _widened(self, envelope: _Vol) -> _Vol:
        """The envelope widened and softened for :meth:`_flatten`, on a grid subsampled by 2.

        Widened by twice the envelope's smoothing and smooth at that scale: the envelope is
        dilated (where its blur reaches 2 %), blurred again and (on the full grid) doubled, so it
        is 1 wherever the envelope is > 0 and its edge is far smoother than the map's resolution
        (a sharper edge would sharpen the particle's boundary: content above the data's
        resolution). The blurs are far wider than the subsampled grid's voxels.
        """
        sigma = float(self.params.envelope_sigma_voxels or 1.0)  # twice this, in voxels of the grid
        sub = np.ascontiguousarray(envelope[::2, ::2, ::2])
        grown = prior_smooth(sub, sigma, workers=self.workers, backend=self.backend) > np.float32(0.02)
        return prior_smooth(grown.astype(np.float32), sigma, workers=self.workers, backend=self.backend)

    def _run_slabs(self, fn: Callable[[int, int], None]) -> None:
        """``fn(z0, z1)`` over slabs of planes of the box, on the denoiser's threads."""
        rows = _slabs.slab_rows(self.shape[0], self.shape[1] * self.shape[2], np)
        _slabs.run(fn, self.shape[0], rows=rows, workers=self.workers)

    def _agree(self, vol: _Vol, base: list[_Vol], envelope: _Vol | None, stats: DenoiseStatistics,
               buf: npt.NDArray[np.complex64]) -> _Vol:
        """The average pulled to its solvent level where the halves disagree (in place).

        The linear filter's halves differ by filtered noise only, with a local variance the
        statistics predict, ``V = sum_b q_b^2 2 N_b``. Their squared difference, smoothed over
        the resolution, relative to ``V`` (normalised by its median inside the particle, which
        absorbs the overlap of neighbouring bands) is a local chi-square ``z2`` near 1; a
        feature in one half only makes it large. The average, relative to its solvent level, is
        multiplied by ``min(1, t / z2)`` with ``t = _CONSISTENCY_Z2``: a smooth factor, 1 wherever
        the halves agree (and where no signal is expected). Only the average can do this: the
        halves never see each other's voxels. ``buf`` (a full-size spectrum buffer) holds the
        smoothed squared difference and then the ratio.
        """
        coarse = self.filter.stats_shape
        expected = np.zeros(coarse, np.float32)
        for sig, noise in zip(stats.signal_coarse, stats.noise_coarse, strict=True):
            expected += _wiener(sig, noise) ** 2 * noise * np.float32(2.0)
        if not float(expected.max()) > 0:
            return vol
        # smoothed over half the best local resolution: a feature as small as the map resolves
        # is not diluted (the global resolution of an unmasked map is far coarser)
        best = float(np.percentile(stats.local_frequency, 99))
        ratio = self._smoothed_square_difference(base[0], base[1], max(_CONSISTENCY_MIN_SIGMA, 0.5 / max(best, 1e-6)),
                                                 buf)
        ref, threshold = self._consistency_reference(ratio, expected)
        if not ref > 0:
            return vol
        level = np.float32(solvent_level(vol, envelope))
        scale = np.float32(1.0 / (_CONSISTENCY_Z2 * ref))

        def work(z0: int, z1: int) -> None:
            r = ratio[z0:z1]
            r *= scale
            np.maximum(r, np.float32(1.0), out=r)
            np.divide(np.float32(1.0), r, out=r)
            r[resample_rows(expected, self.shape, z0, z1) <= threshold] = 1.0  # no signal expected: nothing to judge
            part = vol[z0:z1]
            part -= level
            part *= r
            part += level

        self._run_slabs(work)
        return vol

    def _smoothed_square_difference(self, l1: _Vol, l2: _Vol, sigma: float, buf: npt.NDArray[np.complex64]) -> _Vol:
        """``(l1 - l2)^2`` after a periodic Gaussian smoothing of ``sigma`` voxels, made in place in ``buf``.

        As :func:`~locband.engine.priors.gaussian_smooth`, over slabs and without new volumes.
        """
        shape, steps = self.shape, tuple(1.0 / n for n in self.shape)

        def produce(z0: int, z1: int) -> list[_Vol]:
            diff = l1[z0:z1] - l2[z0:z1]
            diff *= diff
            return [diff]

        _fft.rfftn_slabs(produce, shape, [buf], workers=self.workers, backend=self.backend)
        k = np.float32(-2.0 * np.pi ** 2 * sigma ** 2)

        def smooth(z0: int, z1: int) -> None:
            buf[z0:z1] *= np.exp(k * frequency_squared_rows(shape, steps, z0, z1))

        _slabs.run(smooth, shape[0], rows=_slabs.slab_rows(shape[0], shape[1] * buf.shape[2], np), workers=self.workers)
        return _fft.irfftn(buf, shape, overwrite_input=True, out=_fft.real_view(buf, shape), workers=self.workers,
                           backend=self.backend)

    def _consistency_reference(self, local: _Vol, expected: _Vol) -> tuple[float, np.float32]:
        """``local / V`` in place (``V`` the expected variance on the full grid); its median where signal is expected.

        Returns the median and the threshold on ``V`` above which signal is expected (5 % of its
        largest value).
        """
        vmax = [np.float32(0)] * len(_slabs.row_slabs(self.shape[0], self._rows()))
        self._run_slabs(lambda z0, z1: vmax.__setitem__(z0 // self._rows(),
                                                        resample_rows(expected, self.shape, z0, z1).max()))
        threshold = np.float32(0.05) * max(vmax)
        inside: list[_Vol] = [np.zeros(0, np.float32)] * len(vmax)

        def work(z0: int, z1: int) -> None:
            v = resample_rows(expected, self.shape, z0, z1)
            r = local[z0:z1]
            np.divide(r, np.maximum(v, np.float32(1e-30)), out=r)
            inside[z0 // self._rows()] = r[v > threshold]

        self._run_slabs(work)
        values = np.concatenate(inside)
        return (float(np.median(values)) if values.size else 0.0), threshold

    def _rows(self) -> int:
        """Planes per slab of the box (see :meth:`_run_slabs`)."""
        return _slabs.slab_rows(self.shape[0], self.shape[1] * self.shape[2], np)

    @staticmethod
    def _changes(i: int, b: int, stats: DenoiseStatistics, gains: list[list[_Vol | None]]) -> bool:
        """Whether band ``b`` of map ``i`` can change: sharpened, or its linear weight reaches ``_SKIP``.

        Where the linear weight stays below ``_SKIP`` everywhere the band holds (almost) no
        signal; the non-linear weights pass no more noise power than the linear ones (see
        :meth:`_reweigh`), so leaving such a band at its linear weights changes the map by
        less than ``_SKIP`` of the band's noise.
        """
        if gains[i][b] is not None:
            return True
        nu = stats.noise_coarse[b] * np.float32(0.5 if i == 2 else 1.0)
        return bool(np.any(stats.signal_coarse[b] > np.float32(_SKIP / (1.0 - _SKIP)) * nu))

    def _reweigh(self, i: int, b: int, spectra: tuple[npt.NDArray[np.complex64], ...], stats: DenoiseStatistics,
                 prior: _Prior | None, gain: _Vol | None, limits: _Limits, acc: npt.NDArray[np.complex64],
                 bufs: _Buffers) -> None:
        """Add band ``b`` of map ``i`` times (new weight - linear weight), limited, to the spectrum ``acc``.

        With ``q`` the linear weight (the local FSC ``S / (S + nu)``) and ``m`` the prior's
        blended modulation, the new weight ``S m / (S m + nu)`` is ``q m / (q m + 1 - q)``. The
        band map is made in one buffer; the new weights are made slab by slab into the other
        (:meth:`_new_weights`), and then, once the noise-power guard has its factor, turned slab by
        slab into the weighted band and transformed in place (:func:`~locband.engine._fft.rfftn_slabs`).
        """
        grid = self.layout.grid_shapes[b]
        band_buf, out = bufs.pair(grid)
        self._band_spectrum(b, spectra, band_buf)
        band = _fft.irfftn(band_buf, grid, overwrite_input=True, out=_fft.real_view(band_buf, grid),
                           workers=self.workers, backend=self.backend)
        w = _fft.real_view(out, grid)
        factor = self._new_weights(i, b, stats, prior, w)

        def produce(z0: int, z1: int) -> list[_Vol]:
            v = w[z0:z1]
            if factor is not None:
                v *= factor
            if gain is not None:
                v *= resample_rows(gain, grid, z0, z1)
            v -= self._linear_weight(i, b, stats, z0, z1)
            v *= band[z0:z1]
            if i == 2:
                v *= np.float32(0.5)
            return [v]

        _fft.rfftn_slabs(produce, grid, [out], workers=self.workers, backend=self.backend)
        limits.accumulate(b, out, acc, workers=self.workers)

    def _linear_weight(self, i: int, b: int, stats: DenoiseStatistics, z0: int, z1: int) -> _Vol:
        """Planes ``z0:z1`` of map ``i``'s linear weight of band ``b`` on the band's grid (as in the linear start).

        A view of the statistics when their grid is the band's: never to be changed in place.
        """
        q = resample_rows(stats.weight[b], self.layout.grid_shapes[b], z0, z1)
        if i == 2:  # the average's 2w/(1+w)
            q = q / (1 + q)
            q *= np.float32(2.0)
        return q  # type: ignore[no-any-return]

    def _new_weights(self, i: int, b: int, stats: DenoiseStatistics, prior: _Prior | None, out: _Vol
                     ) -> np.float32 | None:
        """Map ``i``'s new weights of band ``b`` into ``out`` (the band's grid), slab by slab.

        Returns the noise-power guard's factor (None: 1): the non-linear weights never pass more
        noise power than the linear ones, ``sum w^2 nu <= sum q^2 nu`` (rescaled otherwise);
        they redistribute, they do not add. Without a prior the weights are the linear ones.
        """
        grid, par = self.layout.grid_shapes[b], self.params
        rows = _slabs.slab_rows(grid[0], grid[1] * grid[2], np)
        powers: list[tuple[float, float]] = [(0.0, 0.0)] * len(_slabs.row_slabs(grid[0], rows))
        floor = np.float32(par.significance_floor * prior.scale) if prior is not None else np.float32(0)

        def work(z0: int, z1: int) -> None:
            q = self._linear_weight(i, b, stats, z0, z1)
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
            w: _Vol = out[z0:z1]
            np.add(m, np.float32(1.0) - q, out=w)
            np.maximum(w, np.float32(1e-30), out=w)
            np.divide(m, w, out=w)
            nu = resample_rows(stats.noise[b], grid, z0, z1)
            powers[z0 // rows] = (float(np.vdot(q, q * nu)), float(np.vdot(w, w * nu)))

        _slabs.run(work, grid[0], rows=rows, workers=self.workers)
        e0, e1 = math.fsum(p[0] for p in powers), math.fsum(p[1] for p in powers)
        return np.float32(math.sqrt(e0 / e1)) if prior is not None and e1 > e0 > 0 else None

    def _band_spectrum(self, b: int, spectra: tuple[npt.NDArray[np.complex64], ...], dst: npt.NDArray[np.complex64]
                       ) -> None:
        """``dst = sum(spectra)[crop] * band weight``: band ``b`` of one map on the band's grid, slab by slab.

        As :meth:`LocalFilter._band_spectra`, for the sum of one or two spectra (the average's is
        ``F1 + F2``), without a full-size sum.
        """
        lf = self.filter
        setup = lf._setup(b)
        grid = setup.grid
        mxh = grid[2] // 2 + 1
        y_rows = crop_rows(self.shape[1], grid[1], 0, grid[1])

        def work(z0: int, z1: int) -> None:
            w = setup.weight[z0:z1] if setup.weight is not None else lf._weight_rows(b, z0, z1)
            for z_full, z_band in crop_rows(self.shape[0], grid[0], z0, z1):
                wz = w[z_band.start - z0:z_band.stop - z0]
                for y_full, y_band in y_rows:
                    part = spectra[0][z_full, y_full, :mxh]
                    if len(spectra) > 1:
                        part = part + spectra[1][z_full, y_full, :mxh]
                    np.multiply(part, wz[:, y_band], out=dst[z_band, y_band])

        _slabs.run(work, grid[0], rows=_slabs.slab_rows(grid[0], grid[1] * mxh, np), workers=self.workers)


def _scaled(report: ProgressCallback, start: float, span: float) -> ProgressCallback:
    """A progress callback reporting ``start + span * fraction`` to ``report``."""
    def inner(fraction: float, message: str) -> None:
        report(start + span * fraction, message)
    return inner


def _resampled(vol: _Vol, shape: tuple[int, ...]) -> _Vol:
    """:func:`resample_linear` that always returns a new array (safe to modify in place)."""
    out = resample_linear(vol, shape)
    return out.copy() if out is vol else out


def _mean_where(rho: _Vol, envelope: _Vol | None) -> float:
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


def _wiener(signal: _Vol, noise: _Vol) -> _Vol:
    """``S / (S + N)`` (a new array) for ``S, N >= 0``; 0 where both are 0."""
    den = signal + noise
    np.maximum(den, np.float32(1e-30), out=den)
    np.divide(signal, den, out=den)
    return den


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
