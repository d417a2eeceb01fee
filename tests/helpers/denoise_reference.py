"""``locband denoise`` as it was before the cost work (commit 23366be), frozen as a reference.

A verbatim copy of ``locband.engine.denoise`` at that commit (statistics and linear start,
priors, significance weighting, limits, sharpening gains, consistency, flat solvent, the
cross-validation FSCs), with the prior functions that the cost work may reorganise
(``prior_density``, ``remove_isolated_blobs``) copied from ``locband.engine.priors`` too. It
uses the live engine for the band statistics (``LocalFilter._band_stats``, which
``tests/engine/test_regression.py`` holds to its own frozen reference), the sums of the bands
(``_Outputs.add``), the FFT seam and the small helpers (envelope, sharpening fits). Only the
names ``Denoiser`` and ``denoise`` are renamed (``ReferenceDenoiser``, ``reference_denoise``).
``tests/engine/test_denoise_regression.py`` compares the optimised denoiser with it.
"""
# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from locband.engine import _fft
from locband.engine._checks import PairScale, check_mask, check_positive, check_same_shape, check_volume, pair_scale
from locband.engine._crossing import _Crossing
from locband.engine._grid import crop_indices, frequency_squared, rfft_multiplicity, rfft_shape
from locband.engine._interp import resample_linear
from locband.engine._outputs import _Outputs
from locband.engine.bands import band_weight, gaussian_window
from locband.engine.denoise_params import DenoiseParams, DenoiseResult
from locband.engine.fsc import check_independent_halves, fsc_from_spectra, masked_for_fsc
from locband.engine.local import LocalFilter
from locband.engine.params import BandLayout, FSCCurve
from locband.engine.priors import _CONNECT, EnvelopeSpec, envelope_from_map, solvent_level
from locband.engine.priors import apply_positivity, flatten_solvent
from locband.engine.priors import gaussian_smooth
from locband.engine.priors import gaussian_smooth as prior_smooth  # the name denoise.py used
from locband.engine.sharpen import band_volumes, local_bfactor, sharpening_gain, significance_ramp
from locband.engine.units import angstrom_to_cycles, cycles_to_angstrom

__all__ = ["ReferenceDenoiser", "reference_denoise"]

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


class _BandSplitter:
    """Band ``b`` of any full-size spectrum, on the band's Fourier-cropped grid."""

    def __init__(self, shape: tuple[int, ...], layout: BandLayout) -> None:
        self.shape, self.layout = shape, layout
        self._steps = tuple(1.0 / n for n in shape)
        self._cache: dict[int, tuple[_Index | None, npt.NDArray[np.float32] | None]] = {}

    def crop(self, b: int) -> _Index | None:
        """np.ix_ index of band ``b``'s grid in a full spectrum (None: the full grid)."""
        grid = self.layout.grid_shapes[b]
        return None if grid == self.shape else np.ix_(*crop_indices(self.shape, grid))

    def weight(self, b: int) -> npt.NDArray[np.float32]:
        """Band ``b``'s Fourier weight on its grid; kept when the grid is at most 1/4 of the box."""
        idx, w = self._cache.get(b, (None, None))
        if w is not None:
            return w
        idx = self.crop(b)
        s2 = frequency_squared(self.shape, self._steps)
        w = band_weight(np.sqrt(s2 if idx is None else s2[idx]), np.asarray(self.layout.centres), b)
        if 4 * int(np.prod(self.layout.grid_shapes[b])) <= int(np.prod(self.shape)):
            self._cache[b] = (idx, w)
        return w

    def band(self, b: int, spec: npt.NDArray[np.complex64], *, workers: int, backend: str) -> _Vol:
        """Real-space band ``b`` of the spectrum ``spec`` on the band's grid."""
        idx = self.crop(b)
        part = (spec if idx is None else spec[idx]) * self.weight(b)
        return _fft.irfftn(part, self.layout.grid_shapes[b], overwrite_input=True, workers=workers,
                           backend=backend)


class _Limits:
    """How much of each weighted band is kept at each frequency (see :class:`_Accumulator`).

    Band ``b`` keeps only frequencies above the previous centre; between its own centre and
    the next one its content is scaled by ``upper[b]``; beyond the next centre it is cut.
    Applied in place on the band's spectrum, from the (cached) frequencies of its grid.
    """

    def __init__(self, shape: tuple[int, ...], layout: BandLayout, upper: list[float]) -> None:
        self.shape, self.layout, self.upper = shape, layout, upper

    def apply(self, b: int, spec: npt.NDArray[np.complex64]) -> None:
        """Limit band ``b``'s weighted spectrum (on the band's grid) in place."""
        c = self.layout.centres
        s2 = frequency_squared(self.layout.grid_shapes[b], tuple(1.0 / n for n in self.shape))
        if b > 0:
            spec[s2 <= np.float32(c[b - 1]) ** 2] = 0
        if b + 1 < len(c):
            hi = s2 >= np.float32(c[b + 1]) ** 2
            if self.upper[b] < 1.0:
                mid = s2 > np.float32(c[b]) ** 2
                mid &= ~hi
                spec[mid] *= np.float32(self.upper[b])
            spec[hi] = 0


class _Accumulator:
    """Sum of one map's weighted bands, each band kept near its own frequencies.

    A non-linear weight varies from voxel to voxel, so a weighted band spreads beyond the
    band's frequencies. Spreading below the band would rectify: the weight is high where the
    band's values are, so their product has a mean and low-frequency parts that no data
    support; spreading above the band could put content where the data have none
    (extrapolation). :class:`_Limits` cuts both. Bands are summed as spectra.
    """

    def __init__(self, shape: tuple[int, ...], limits: _Limits, *, workers: int, backend: str) -> None:
        self.shape, self.limits = shape, limits
        self.workers, self.backend = workers, backend
        self.spectrum = np.zeros(rfft_shape(shape), np.complex64)

    def add(self, b: int, part: _Vol) -> None:
        """Add band ``b``'s weighted values (on the band's grid; consumed)."""
        grid = part.shape
        spec = _fft.rfftn(part, workers=self.workers, backend=self.backend)
        del part
        self.limits.apply(b, spec)
        if grid == self.shape:
            self.spectrum += spec
        else:
            self.spectrum[np.ix_(*crop_indices(self.shape, grid))] += spec

    def finish(self) -> _Vol:
        """The real-space sum."""
        return _fft.irfftn(self.spectrum, self.shape, overwrite_input=True, workers=self.workers,
                           backend=self.backend)


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


class ReferenceDenoiser:
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
        self._split = _BandSplitter(self.shape, self.layout)
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
                             f"but this ReferenceDenoiser was planned for {self.shape} with {self.layout.n_bands} bands")
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
        check_independent_halves(fsc_from_spectra(f1, f2, self.shape))
        stats, _ = self._linear_start(f1, f2, lambda fraction, message: None, None, maps=False, scale=norm.scale)
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
            raise ValueError(f"half-maps have shape {h1.shape}, but this ReferenceDenoiser was planned for {self.shape}")
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
        fsc_unmasked = fsc_from_spectra(f1, f2, self.shape)
        check_independent_halves(fsc_unmasked)  # identical or anti-correlated halves: as locband filter
        timings["fsc"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        stats, base = self._linear_start(f1, f2, _scaled(report, 0.05, 0.35), statistics, maps=True,
                                         scale=norm.scale)
        timings["statistics"] = time.perf_counter() - t1
        maps, env_volume = base, None
        for k in range(par.cycles):
            t2 = time.perf_counter()
            maps, env_volume = self._cycle(f1, f2, stats, base, maps, final=k == par.cycles - 1,
                                           report=_scaled(report, 0.4 + 0.5 * k / par.cycles, 0.5 / par.cycles))
            timings[f"cycle_{k + 1}"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        report(0.92, "cross-validation")
        raw_masked = self._masked_spectra(f1, f2)
        fsc_masked = None if raw_masked is None else fsc_from_spectra(raw_masked[0], raw_masked[1], self.shape)
        cross_linear = self._cross(base[0], base[1], f1, f2, raw_masked)
        del base
        cross = self._cross(maps[0], maps[1], f1, f2, raw_masked)
        del f1, f2, raw_masked
        norm.restore(maps[0], maps[1], maps[2])  # each half its mean back, the average the mean of both
        floor = np.float32(1.0 / max(self.shape))
        local_freq = np.maximum(resample_linear(stats.local_frequency, self.shape), floor)
        local_res = cycles_to_angstrom(local_freq, pixel_size_angstrom=self.pixel_size_angstrom).astype(np.float32)
        timings["cross_validation"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        self.calls += 1
        report(1.0, "done")
        log.debug("interpretation map of %s in %.2f s", self.shape, timings["total"])
        return DenoiseResult(
            full=maps[2], half1=maps[0], half2=maps[1], local_frequency=local_freq.astype(np.float32),
            local_resolution_angstrom=local_res, envelope_volume_voxels=env_volume,
            pixel_size_angstrom=self.pixel_size_angstrom, fsc_unmasked=fsc_unmasked, fsc_masked=fsc_masked,
            cross_unmasked=cross[0], cross_masked=cross[1], cross_linear_unmasked=cross_linear[0],
            cross_linear_masked=cross_linear[1], bands=self.layout, params=par, timings=timings)

    def _masked_spectra(self, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64]
                        ) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]] | None:
        """Spectra of the raw halves, solvent level removed, times the mask (None without a mask)."""
        if self.mask is None:
            return None
        out = []
        for f in (f1, f2):
            vol = masked_for_fsc(_fft.irfftn(f, self.shape, workers=self.workers, backend=self.backend), self.mask)
            spec = _fft.rfftn(vol, workers=self.workers, backend=self.backend)
            spec[(0,) * spec.ndim] = 0  # as locband filter's masked FSC: the mean is no signal
            out.append(spec)
        return out[0], out[1]

    def _smoothed(self, spec: npt.NDArray[np.complex64]) -> _Vol:
        """The map of ``spec`` after the envelope's smoothing.

        The smoothing passes nothing beyond about ``0.7 / sigma`` cycles/voxel, so the smoothed
        map is made on a Fourier-cropped grid and interpolated back (8 times cheaper at 20 Å).
        """
        sigma = float(self.params.envelope_sigma_voxels or 1.0)
        small = tuple(min(n, _fft.next_fast_len(max(8, math.ceil(2 * 0.7 / sigma * n)))) for n in self.shape)
        idx = np.ix_(*crop_indices(self.shape, small))
        part = spec[idx] * self._envelope_filter()[idx]
        out = _fft.irfftn(part, small, overwrite_input=True, workers=self.workers, backend=self.backend)
        return _resampled(out, self.shape)

    def _envelope_filter(self) -> npt.NDArray[np.float32]:
        """The envelope's Gaussian smoothing in Fourier space."""
        sigma = float(self.params.envelope_sigma_voxels or 1.0)
        s2 = frequency_squared(self.shape, tuple(1.0 / n for n in self.shape))
        return np.asarray(np.exp(np.float32(-2.0 * np.pi ** 2 * sigma ** 2) * s2), dtype=np.float32)

    def _envelope(self, spec: npt.NDArray[np.complex64], noise_variance: float) -> _Vol | None:
        """Solvent boundary of one map from its own (raw) spectrum.

        None without solvent flattening. The user's mask, when given, is the envelope (times
        the volume-sized envelope when a molecular volume is given).
        """
        par = self.params
        if not par.solvent_flattening:
            return None
        if self.mask is not None and par.molecular_volume_voxels is None:
            return self.mask
        smoothed = self._smoothed(spec)
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
                      statistics: DenoiseStatistics | None, *, maps: bool, scale: float
                      ) -> tuple[DenoiseStatistics, list[_Vol]]:
        """The statistics (measured unless given) and the linear filter's three maps.

        The linear maps are exactly ``locband filter``'s: per band the half weight
        ``w = S / (S + N)`` interpolated from its statistics grid, the average's ``2w/(1+w)``.
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
            if statistics is None:
                b1, b2, sig, noise = lf._band_stats(b, f1, f2)
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
            elif outputs is not None:
                b1 = self._split.band(b, f1, workers=self.workers, backend=self.backend)
                b2 = self._split.band(b, f2, workers=self.workers, backend=self.backend)
                w = statistics.weight[b]
            if outputs is not None:
                # as LocalFilter: the half weight S/(S+N) is interpolated; the average's is 2w/(1+w)
                wh = resample_linear(w, b1.shape)
                full = b1 + b2
                full *= wh / (1 + wh)
                b1 *= wh
                b2 *= wh
                del wh
                outputs.add(b, b1, b2, full)
                del b1, b2, full
            report(float(cost[b] / cost[-1]), f"statistics: band {b + 1}/{n}")
        linear = list(outputs.finish()) if outputs is not None else []
        if statistics is not None:
            return statistics, linear
        diff = f1 - f2
        power = diff.real ** 2 + diff.imag ** 2
        del diff
        g = self._envelope_filter()
        power *= g * g
        del g
        power *= rfft_multiplicity(self.shape)
        # the resolution of the particle: median local resolution where there is signal (inside the
        # mask when there is one)
        m = lf._small_mask(coarse)
        has = (m > 0.5) if m is not None else (crossing.frequency > 2.0 / min(self.shape))
        freq = crossing.frequency[has] if has.any() else crossing.frequency
        res = 1.0 / max(float(np.median(freq)), 1e-6)
        stats = DenoiseStatistics(
            shape=self.shape, weight=tuple(weight), noise=tuple(noise_b), signal_coarse=tuple(sig_c),
            noise_coarse=tuple(noise_c), residual_variance=(residual[0], residual[1], residual[2]),
            local_frequency=crossing.frequency,
            # |F1 - F2|^2 / 2 per coefficient is the noise power of one half
            envelope_noise_variance=0.5 * float(power.sum(dtype=np.float64)),
            resolution_voxels=float(np.clip(res, 2.0, min(self.shape) / 4)), scale=scale)
        return stats, linear

    def _cross(self, p1: _Vol, p2: _Vol, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64],
               masked: tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]] | None
               ) -> tuple[tuple[FSCCurve, FSCCurve], tuple[FSCCurve, FSCCurve] | None]:
        """FSC of processed half 1 with raw half 2 and of processed half 2 with raw half 1."""
        wk, be = self.workers, self.backend
        unmasked = (fsc_from_spectra(_fft.rfftn(p1, workers=wk, backend=be), f2, self.shape),
                    fsc_from_spectra(_fft.rfftn(p2, workers=wk, backend=be), f1, self.shape))
        if masked is None or self.mask is None:
            return unmasked, None
        masked_p = []
        for p in (p1, p2):  # as the raw halves': solvent level removed, the mean is no signal
            spec = _fft.rfftn(masked_for_fsc(p, self.mask), workers=wk, backend=be)
            spec[(0,) * spec.ndim] = 0
            masked_p.append(spec)
        return unmasked, (fsc_from_spectra(masked_p[0], masked[1], self.shape),
                          fsc_from_spectra(masked_p[1], masked[0], self.shape))

    # -- one density-modification cycle ----------------------------------------------------
    def _prior(self, vol: _Vol, envelope: _Vol | None, residual_var: _Vol, res_vox: float) -> _Prior | None:
        """The priors' density of one map, as ``rho**power`` with its scale and window means."""
        par, lay = self.params, self.layout
        sd = math.sqrt(max(float(np.percentile(residual_var, 95)), 0.0))
        rho, _ = prior_density(vol, envelope=envelope, positivity=par.positivity, connectivity=par.connectivity,
                               blob_threshold=_BLOB_Z * sd, blob_min_voxels=4.0 / 3.0 * math.pi * (2 * res_vox) ** 3,
                               blob_distance_voxels=2 * res_vox, workers=self.workers, backend=self.backend)
        rho **= np.float32(par.significance_power)
        inside = rho[envelope > 0.5] if envelope is not None else rho[rho > 0]
        scale = float(inside.mean(dtype=np.float64)) if inside.size else 0.0
        del inside
        if not scale > 0:
            return None
        spec = _fft.rfftn(rho, workers=self.workers, backend=self.backend)
        steps = tuple(1.0 / n for n in self.shape)
        windows: list[_Vol] = [np.zeros(0, np.float32)]
        for b in range(1, lay.n_bands):
            small = lay.stats_shapes[b]
            part = spec[np.ix_(*crop_indices(self.shape, small))] if small != self.shape else spec.copy()
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
               base: list[_Vol], maps: list[_Vol], *, final: bool,
               report: ProgressCallback) -> tuple[list[_Vol], float | None]:
        """Priors on each map, then its bands reweighted; returns ``base`` plus the changes.

        The maps are done one after the other (half 1, half 2, average) so that only one
        map's envelope, prior and temporaries are held at a time. Also returns the number of
        voxels inside the average's envelope (None without one).
        """
        par, lay = self.params, self.layout
        gains: list[list[_Vol | None]] = self._gains(stats) if final else [[None] * lay.n_bands for _ in range(3)]
        upper = self._upper(stats)
        cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
        out: list[_Vol] = []
        env_volume = None
        limits = _Limits(self.shape, lay, upper)
        for i in range(3):
            prior = None
            spec = f1 if i == 0 else f2 if i == 1 else f1 + f2
            # the average's spectrum is twice the mean's: its smoothed map is scaled back, its
            # noise is half a half's
            env = self._envelope(spec * np.float32(0.5) if i == 2 else spec,
                                 stats.envelope_noise_variance / (2.0 if i == 2 else 1.0))
            if env is not None and i == 2:
                env_volume = float(np.count_nonzero(env > 0.5))
            if par.significance:
                prior = self._prior(maps[i], env, stats.residual_variance[i], stats.resolution_voxels)
            acc = _Accumulator(self.shape, limits, workers=self.workers, backend=self.backend)
            for b in range(1, lay.n_bands):
                if self._changes(i, b, stats, gains):
                    acc.add(b, self._reweigh(i, b, spec, stats, prior, gains[i][b]))
                report((i + cost[b] / cost[-1]) / 3, f"density modification: map {i + 1}/3, band {b + 1}")
            del prior, spec
            new = acc.finish()
            del acc
            new += base[i]
            if final and i == 2 and par.consistency:
                new = self._agree(new, base, env, stats)
            if final and env is not None:
                new = self._flatten(new, env)
            del env
            out.append(new)
        return out, env_volume

    def _flatten(self, vol: _Vol, envelope: _Vol) -> _Vol:
        """The solvent of one final map flat at its level, outside a widened envelope.

        The envelope is widened and softened before use: a tight edge cuts the tails of surface
        density, and a sharp one sharpens the particle's boundary, which puts content above the
        data's resolution (measured: with the envelope's own edge, probe (a) of
        ``bench_denoise`` found FSC 0.04 with the truth above the cut, at the linear filter's
        0.01 with this one).
        """
        level = np.float32(solvent_level(vol, envelope))
        # widened by twice the envelope's smoothing and smooth at that scale: the envelope is
        # dilated (where its blur reaches 2 %), blurred again and doubled, so it is 1 wherever
        # the envelope is > 0 and its edge is far smoother than the map's resolution (a sharper
        # edge would sharpen the particle's boundary: content above the data's resolution).
        # Done on a grid subsampled by 2: the blurs are far wider than its voxels.
        sigma = float(self.params.envelope_sigma_voxels or 1.0)  # twice this, in voxels of the grid
        sub = np.ascontiguousarray(envelope[::2, ::2, ::2])
        grown = prior_smooth(sub, sigma, workers=self.workers, backend=self.backend) > np.float32(0.02)
        soft = prior_smooth(grown.astype(np.float32), sigma, workers=self.workers, backend=self.backend)
        soft = _resampled(soft, self.shape)
        soft *= np.float32(2.0)
        np.clip(soft, 0.0, 1.0, out=soft)
        vol -= level
        vol *= soft
        vol += level
        return vol

    def _agree(self, vol: _Vol, base: list[_Vol], envelope: _Vol | None, stats: DenoiseStatistics) -> _Vol:
        """The average pulled to its solvent level where the halves disagree (see :meth:`_consistency`)."""
        agree = self._consistency(base[0], base[1], stats)
        if agree is None:
            return vol
        level = np.float32(solvent_level(vol, envelope))
        vol -= level
        vol *= agree
        vol += level
        return vol

    def _consistency(self, l1: _Vol, l2: _Vol, stats: DenoiseStatistics) -> _Vol | None:
        """Where the two halves agree (1) or disagree beyond their noise (down to 0), for the average.

        The linear filter's halves differ by filtered noise only, with a local variance the
        statistics predict, ``V = sum_b q_b^2 2 N_b``. Their squared difference, smoothed over
        the resolution, relative to ``V`` (normalised by its median inside the particle, which
        absorbs the overlap of neighbouring bands) is a local chi-square ``z2`` near 1; a
        feature in one half only makes it large. The average, relative to its solvent level, is
        multiplied by ``min(1, t / z2)`` with ``t = _CONSISTENCY_Z2``: a smooth factor, 1 wherever
        the halves agree. Only the average can do this: the halves never see each other's voxels.
        """
        coarse = self.filter.stats_shape
        expected = np.zeros(coarse, np.float32)
        for sig, noise in zip(stats.signal_coarse, stats.noise_coarse, strict=True):
            expected += _wiener(sig, noise) ** 2 * noise * np.float32(2.0)
        if not float(expected.max()) > 0:
            return None
        diff = l1 - l2
        diff *= diff
        # smoothed over half the best local resolution: a feature as small as the map resolves
        # is not diluted (the global resolution of an unmasked map is far coarser)
        best = float(np.percentile(stats.local_frequency, 99))
        sigma = max(_CONSISTENCY_MIN_SIGMA, 0.5 / max(best, 1e-6))
        local = prior_smooth(diff, sigma, workers=self.workers, backend=self.backend)
        del diff
        v = resample_linear(expected, self.shape)
        inside = v > np.float32(0.05) * v.max()
        ratio = local / np.maximum(v, np.float32(1e-30))
        del local, v
        ref = float(np.median(ratio[inside])) if inside.any() else 0.0
        if not ref > 0:
            return None
        ratio *= np.float32(1.0 / (_CONSISTENCY_Z2 * ref))
        np.maximum(ratio, np.float32(1.0), out=ratio)
        np.divide(np.float32(1.0), ratio, out=ratio)
        ratio[~inside] = 1.0  # no signal expected: nothing to judge
        return np.asarray(ratio, dtype=np.float32)

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

    def _reweigh(self, i: int, b: int, spec: npt.NDArray[np.complex64], stats: DenoiseStatistics, prior: _Prior | None,
                 gain: _Vol | None) -> _Vol:
        """Band ``b`` of map ``i`` times (new weight - linear weight), on the band's grid.

        With ``q`` the linear weight (the local FSC ``S / (S + nu)``) and ``m`` the prior's
        blended modulation, the new weight ``S m / (S m + nu)`` is ``q m / (q m + 1 - q)``.
        """
        wk, be, par = self.workers, self.backend, self.params
        grid = self.layout.grid_shapes[b]
        q = resample_linear(stats.weight[b], grid)  # the half's linear weight, as in pass 1
        if i == 2:
            q = q / (1 + q)
            q *= np.float32(2.0)
        if prior is not None:
            # on a cropped grid, rho**power by linear interpolation: a predictor of where the
            # signal lies needs no exact band limit (Fourier cropping measured no better, at
            # one more transform per band and map)
            num = resample_linear(prior.rho, grid)
            floor = np.float32(par.significance_floor * prior.scale)
            m = num + floor
            den = _resampled(prior.windows[b], grid)
            np.maximum(den, 0, out=den)
            den += floor
            m /= den
            del den
            # S_x = S (1 + (1 - q)(m - 1)): the prior decides only where the data say little
            m -= np.float32(1.0)
            m *= np.float32(1.0) - q
            m += np.float32(1.0)
            m *= q  # q m, then the weight q m / (q m + 1 - q)
            w = m + (np.float32(1.0) - q)
            np.maximum(w, np.float32(1e-30), out=w)
            np.divide(m, w, out=w)
            del m
            # never pass more noise power than the linear weights: redistribute, do not add
            nu = resample_linear(stats.noise[b], grid)
            e0, e1 = float(np.vdot(q, q * nu)), float(np.vdot(w, w * nu))
            del nu
            if e1 > e0 > 0:
                w *= np.float32(math.sqrt(e0 / e1))
        else:
            w = q.copy()
        if gain is not None:
            w *= resample_linear(gain, grid)
        w -= q
        del q
        w *= self._split.band(b, spec, workers=wk, backend=be)
        if i == 2:
            w *= np.float32(0.5)
        return w


def _scaled(report: ProgressCallback, start: float, span: float) -> ProgressCallback:
    """A progress callback reporting ``start + span * fraction`` to ``report``."""
    def inner(fraction: float, message: str) -> None:
        report(start + span * fraction, message)
    return inner


def _resampled(vol: _Vol, shape: tuple[int, ...]) -> _Vol:
    """:func:`resample_linear` that always returns a new array (safe to modify in place)."""
    out = resample_linear(vol, shape)
    return out.copy() if out is vol else out


def _wiener(signal: _Vol, noise: _Vol) -> _Vol:
    """``S / (S + N)`` (a new array) for ``S, N >= 0``; 0 where both are 0."""
    den = signal + noise
    np.maximum(den, np.float32(1e-30), out=den)
    np.divide(signal, den, out=den)
    return den


def reference_denoise(half1: npt.ArrayLike, half2: npt.ArrayLike, *, pixel_size_angstrom: float,
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
        from locband.engine.units import molecular_volume_voxels

        mass = check_positive(molecular_mass_kda, name="molecular_mass_kda")
        px = check_positive(pixel_size_angstrom, name="pixel_size_angstrom")
        params = replace(params, molecular_volume_voxels=molecular_volume_voxels(mass, pixel_size_angstrom=px))
    den = ReferenceDenoiser(h1.shape, pixel_size_angstrom=pixel_size_angstrom, mask=mask, params=params,
                   workers=workers, backend=backend)
    return den.denoise_owned([h1, h2], progress=progress)


# -- from locband.engine.priors at the same commit ----------------------------------------
def _upsample_mask(coarse: npt.NDArray[np.bool_], shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """A mask on a ``[::2]`` subsampled grid back on the full grid (nearest sample)."""
    idx = np.ix_(*[np.minimum(np.arange(n) // 2, c - 1) for n, c in zip(shape, coarse.shape, strict=True)])
    return np.asarray(coarse[idx])


def remove_isolated_blobs(density: npt.NDArray[np.float32], *, threshold: float, min_voxels: float,
                          distance_voxels: float, workers: int = 1, backend: str | None = None
                          ) -> npt.NDArray[np.float32]:
    """Density ``>= 0`` with small blobs far from the main density set to 0.

    Parameters
    ----------
    density : (nz, ny, nx) ndarray of float32
        Non-negative density relative to the solvent level.
    threshold : float
        Blobs are the connected components (26-connectivity) of ``density > threshold``.
    min_voxels : float
        Blobs with at least this many voxels are "main density" and always kept.
    distance_voxels : float
        Smaller blobs are kept when they come within about this distance of main density
        (a ligand next to the protein), and removed otherwise.
    workers : int
        FFT threads (smoothing).
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
        A new array; the voxels of removed blobs (above the threshold) are 0.

    Notes
    -----
    "Near" is measured by blurring the main density's support with a Gaussian of
    ``distance_voxels`` and keeping what it reaches at 1 % of its peak (on a grid subsampled
    by 2).
    """
    above = density > np.float32(threshold)
    labels, n = ndimage.label(above, structure=_CONNECT)
    if n == 0:
        return density.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    big = sizes >= min_voxels
    if not big[1:].any():  # nothing qualifies as main density: keep the largest blob as such
        big[int(np.argmax(sizes))] = True
    main = big[labels]
    # "near" on a grid subsampled by 2 (a quarter of the distance in its voxels is plenty for a
    # 1 % contour of a Gaussian of the whole distance; 8 times cheaper than the full grid)
    near = _upsample_mask(gaussian_smooth(main[::2, ::2, ::2].astype(np.float32), max(distance_voxels, 1.0) / 2,
                                          workers=workers, backend=backend) > np.float32(0.01), density.shape)
    small = ~main & above
    near_ids = np.unique(labels[small & near])
    drop = small & ~np.isin(labels, near_ids)
    out = density.copy()
    out[drop] = 0.0
    return out


def prior_density(volume: npt.NDArray[np.float32], *, envelope: npt.NDArray[np.float32] | None,
                  positivity: bool = True, connectivity: bool = True, blob_threshold: float = 0.0,
                  blob_min_voxels: float = 0.0, blob_distance_voxels: float = 0.0, workers: int = 1,
                  backend: str | None = None) -> tuple[npt.NDArray[np.float32], float]:
    """The density the priors expect, relative to the solvent level, and that level.

    Parameters
    ----------
    volume : (nz, ny, nx) ndarray of float32
        The current estimate of the map.
    envelope : (nz, ny, nx) ndarray of float32 or None
        Soft molecular envelope in [0, 1] (flat solvent outside); None: no flat-solvent prior.
    positivity : bool
        Density below the solvent level is raised to it. Without positivity the magnitude of
        the deviation from the solvent level is used (density and "negative density" alike).
    connectivity : bool
        Remove small isolated blobs (:func:`remove_isolated_blobs` with the ``blob_*``
        settings; skipped when ``blob_min_voxels`` is 0).
    blob_threshold, blob_min_voxels, blob_distance_voxels : float
        See :func:`remove_isolated_blobs`.
    workers : int
        FFT threads (smoothing).
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    density : (nz, ny, nx) ndarray of float32
        ``>= 0``; 0 in the solvent (with an envelope) and wherever the priors rule density out.
    level : float
        The solvent level the density is measured from.

    Notes
    -----
    ``P = flatten_solvent(apply_positivity(volume, level), envelope, level)`` and the density
    is ``P - level`` (``|P - level|`` without positivity), then isolated blobs are removed.
    """
    level = solvent_level(volume, envelope)
    p = apply_positivity(volume, level) if positivity else np.array(volume, dtype=np.float32)
    if envelope is not None:
        p = flatten_solvent(p, envelope, level)
    p -= np.float32(level)
    if not positivity:
        np.abs(p, out=p)
    if connectivity and blob_min_voxels > 0:
        p = remove_isolated_blobs(p, threshold=blob_threshold, min_voxels=blob_min_voxels,
                                  distance_voxels=blob_distance_voxels, workers=workers, backend=backend)
    return p, level
