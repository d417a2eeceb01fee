"""Local band-wise Wiener filtering of two half-maps.

For every band (see :mod:`locband.engine.bands`) both halves are brought back to real space
on a Fourier-cropped grid just large enough for the band. Around every voxel a Gaussian window
whose sigma is a fixed number of the band's wavelengths gives

* ``C = <b1 b2>``, the local cross-power (signal power: the noise of the halves is independent),
* ``D = <(b1 - b2)^2> / 2``, the local noise power of one half.

The noise power is smoothed over a window ``_NOISE_WINDOW`` times as wide (noise varies slowly,
and a steadier denominator makes steadier weights). The signal estimate is corrected for the
finite window in two steps (:meth:`LocalFilter._signal`): ``C`` is shrunk towards the band's
global level, ``x = mu + k (C - mu)``, by as much as its spatial variation does not exceed the
noise, then a non-negative garrote, ``S = max(x - (z k sd)^2 / x, 0)`` with ``sd = D /
sqrt(n_eff)`` the standard deviation of ``C`` on pure noise for this band and window: local
correlations within a few ``sd`` of zero are removed, strong ones are kept almost unbiased. The local half-map FSC
is ``S / (S + D)``; it is the Wiener weight of one half, and ``S / (S + D / 2)`` that of the
average.

Cost and memory: the smoothed statistics are band-limited by their window, so they are kept on
a small grid and the weights are brought back by separable linear interpolation. Bands whose
grid is the full box are weighted and summed in real space; the smaller ones are summed as
Fourier-cropped spectra and transformed back once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._checks import check_mask, check_positive, check_same_shape, check_volume, pair_scale
from locband.engine._grid import crop_indices, frequency_squared, rfft_shape
from locband.engine._interp import resample_linear
from locband.engine.bands import band_layout, band_weight, gaussian_window
from locband.engine.fsc import check_independent_halves, fsc_from_spectra, masked_for_fsc
from locband.engine.params import FilterParams, FilterResult, ProgressCallback
from locband.engine.units import cycles_to_angstrom

__all__ = ["LocalFilter", "local_filter"]

log = logging.getLogger(__name__)

_Index = tuple[npt.NDArray[np.intp], ...]  # np.ix_ index of a Fourier crop

_SNR_CAP = 1e6  # reported SNR where the halves agree exactly (no noise at all)
_NOISE_WINDOW = 2.0  # noise window sigma relative to the signal window (measured: README)


def _smooth(x: npt.NDArray[np.float32], g: npt.NDArray[np.float32], idx: _Index | None, small: tuple[int, ...],
            *, workers: int, backend: str) -> npt.NDArray[np.float32]:
    """Gaussian-smooth ``x`` (consumed) and return it on the small grid ``small``."""
    spec = _fft.rfftn(x, workers=workers, backend=backend)
    del x
    spec = spec if idx is None else spec[idx]
    spec *= g
    return _fft.irfftn(spec, small, overwrite_input=True, workers=workers, backend=backend)


class LocalFilter:
    """A local band-wise filter planned for one box, voxel size and mask.

    Create it once per refinement (or per map size); each call filters one pair of halves and
    reuses the band layout, frequency grids and FFT plans.

    Parameters
    ----------
    shape : tuple of int
        Box ``(nz, ny, nx)``; any sizes >= 8 (odd, prime and non-cubic included).
    pixel_size_angstrom : float
        Voxel size, only used to express the local resolution in Å.
    mask : (nz, ny, nx) array_like, optional
        Soft mask in [0, 1]: gives the masked global FSC and, with ``params.apply_mask``, masks
        the outputs. Local statistics use every voxel.
    params : FilterParams, optional
        Settings; defaults are documented in :class:`FilterParams`.
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation (default pyFFTW where installed).

    Raises
    ------
    ValueError
        Bad shape, voxel size, mask or settings.
    """

    def __init__(self, shape: tuple[int, ...], *, pixel_size_angstrom: float,
                 mask: npt.ArrayLike | None = None, params: FilterParams | None = None,
                 workers: int = 1, backend: str | None = None) -> None:
        shape = tuple(int(n) for n in shape)
        if len(shape) != 3 or min(shape) < 8:
            raise ValueError(f"shape must be (nz, ny, nx) with every edge >= 8, got {shape}")
        self.shape = shape
        self.pixel_size_angstrom = check_positive(pixel_size_angstrom, name="pixel_size_angstrom")
        self.params = params if params is not None else FilterParams()
        if not isinstance(self.params, FilterParams):
            raise TypeError(f"params must be a FilterParams, got {type(self.params).__name__}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.backend = backend if backend is not None else _fft.default_backend()
        _fft.rfftn(np.zeros((2, 2, 2), np.float32), backend=self.backend)  # validates the name
        self.mask = None if mask is None else check_mask(mask, shape)
        self.layout = band_layout(shape, self.params)
        self.stats_shape = tuple(min(n, self.params.stats_grid) for n in shape)
        self._steps = tuple(1.0 / n for n in shape)
        self._mask_cache: dict[tuple[int, ...], npt.NDArray[np.float32]] = {}
        self._setup_cache: dict[int, tuple[_Index | None, npt.NDArray[np.float32] | None, _Index | None,
                                           npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
        self.calls = 0

    # -- one band -------------------------------------------------------------------------
    def _band_stats(self, b: int, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64]
                    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32],
                               npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Band ``b`` of both halves and its local statistics.

        This is the seam shared by every consumer of the band-wise statistics (the linear
        filter here, the interpretation map elsewhere): it returns ``(b1, b2, signal, noise)``,
        the band maps on the band's grid ``layout.grid_shapes[b]`` and the local signal and
        noise power of one half on its statistics grid ``layout.stats_shapes[b]``.
        """
        lay = self.layout
        grid, small = lay.grid_shapes[b], lay.stats_shapes[b]
        idx, w, sidx, g_signal, g_noise = self._setup(b)
        b1 = _fft.irfftn((f1 if idx is None else f1[idx]) * w, grid, overwrite_input=True,
                         workers=self.workers, backend=self.backend)
        b2 = _fft.irfftn((f2 if idx is None else f2[idx]) * w, grid, overwrite_input=True,
                         workers=self.workers, backend=self.backend)
        del w
        c = _smooth(b1 * b2, g_signal, sidx, small, workers=self.workers, backend=self.backend)
        diff = b1 - b2
        np.multiply(diff, diff, out=diff)
        diff *= np.float32(0.5)
        d = _smooth(diff, g_noise, sidx, small, workers=self.workers, backend=self.backend)
        np.maximum(d, 0, out=d)  # smoothing of a non-negative field: clear rounding below 0
        sig = self._signal(c, d, lay.n_effective[b], small)
        return b1, b2, sig, d

    def _band(self, b: int, f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64],
              sink: Callable[[int, npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]], None]
              ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Weight band ``b`` of both halves; hand (w1*b1, w2*b2, wf*(b1+b2)/2) to ``sink``.

        Returns the local signal and noise power on the coarse statistics grid.
        """
        b1, b2, sig, d = self._band_stats(b, f1, f2)
        den = sig + d
        w_half = np.divide(sig, den, out=np.zeros_like(sig), where=den > 0)
        stats = (resample_linear(sig, self.stats_shape), resample_linear(d, self.stats_shape))
        del sig, d, den
        w_half = resample_linear(w_half, b1.shape)
        # the average's weight S/(S+N/2) is 2w/(1+w) of the half weight w = S/(S+N): one
        # interpolation serves both; the 0.5 of the average cancels the 2
        w_full = w_half / (1 + w_half)
        full = b1 + b2
        full *= w_full
        del w_full
        b1 *= w_half
        b2 *= w_half
        del w_half
        sink(b, b1, b2, full)
        return stats

    def _setup(self, b: int) -> tuple[_Index | None, npt.NDArray[np.float32], _Index | None,
                                      npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Band ``b``'s crop indices, band weight and the two windows, made once per filter.

        Band weights are kept only for grids of at most a quarter of the box (at 256^3 the
        larger ones would cost about 140 MB, against a 1 GiB target); everything else is small
        and reused by every later call.
        """
        cached = self._setup_cache.get(b)
        if cached is not None:
            idx, w, sidx, gs, gn = cached
            if w is None:
                s2 = frequency_squared(self.shape, self._steps)
                w = band_weight(np.sqrt(s2 if idx is None else s2[idx]), np.asarray(self.layout.centres), b)
            return idx, w, sidx, gs, gn
        lay = self.layout
        grid, small = lay.grid_shapes[b], lay.stats_shapes[b]
        idx = None if grid == self.shape else np.ix_(*crop_indices(self.shape, grid))
        # only the full grid's frequencies are cached; a cropped grid's are a subset of them
        s2 = frequency_squared(self.shape, self._steps)
        if idx is not None:
            s2 = s2[idx]
        w = band_weight(np.sqrt(s2), np.asarray(lay.centres), b)
        sidx = None if small == grid else np.ix_(*crop_indices(grid, small))
        s2_small = s2 if sidx is None else s2[sidx]
        gs = gaussian_window(s2_small, lay.sigma_voxels[b])
        gn = gaussian_window(s2_small, lay.sigma_voxels[b] * _NOISE_WINDOW)
        keep = 4 * int(np.prod(grid)) <= int(np.prod(self.shape))
        self._setup_cache[b] = (idx, w if keep else None, sidx, gs, gn)
        return idx, w, sidx, gs, gn

    def _small_mask(self, small: tuple[int, ...]) -> npt.NDArray[np.float32] | None:
        if self.mask is None:
            return None
        if small not in self._mask_cache:
            self._mask_cache[small] = _fft.irfftn(
                _fft.rfftn(self.mask, backend="scipy")[np.ix_(*crop_indices(self.shape, small))], small,
                backend="scipy", overwrite_input=True).clip(0, 1)
        return self._mask_cache[small]

    def _signal(self, c: npt.NDArray[np.float32], d: npt.NDArray[np.float32], n_eff: float,
                small: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """Local signal power from the local cross-power ``c`` and noise power ``d``.

        1. Shrinkage towards the band's global level (empirical Bayes): with ``v`` the
           estimation variance of ``c`` (``((S+N)^2 + S^2) / n_eff`` for Gaussian bands) and
           ``tau^2`` the spatial variance of ``c`` beyond it (within the mask), the estimate is
           ``mu + k (c - mu)``, ``k = tau^2 / (tau^2 + v)``, ``mu`` the global level (times the
           mask). Where the SNR is uniform, ``tau^2`` is ~0 and the filter becomes the global
           FSC filter; where it varies, ``k`` is ~1.
        2. Non-negative garrote against what remains of the noise: ``S = max(x - (z k sd)^2/x, 0)``
           with ``sd = D / sqrt(n_eff)``, the pure-noise standard deviation of ``c``.
        """
        m = self._small_mask(small)
        v = np.square(d) * np.float32(1.0 / n_eff)
        wsum = float(m.sum()) if m is not None else float(c.size)

        def mean(a: npt.NDArray[np.float32]) -> float:
            return float((a * m).sum()) / wsum if m is not None else float(a.mean())

        level = mean(c)
        prior = np.float32(level) * m if m is not None else np.float32(level)
        tau2 = max(mean(np.square(c - prior)) - mean(v), 0.0)
        k = np.float32(tau2) / (np.float32(tau2) + v) if tau2 > 0 else np.zeros_like(c)
        x = prior + k * (c - prior)
        np.maximum(x, 0, out=x)
        sd = d * k * np.float32(self.params.noise_threshold / math.sqrt(n_eff))
        np.square(sd, out=sd)
        np.divide(sd, x, out=sd, where=x > 0)
        return np.maximum(x - sd, 0)

    # -- whole filter ---------------------------------------------------------------------
    def __call__(self, half1: npt.ArrayLike, half2: npt.ArrayLike, *,
                 progress: ProgressCallback | None = None) -> FilterResult:
        """Filter one pair of half-maps.

        Parameters
        ----------
        half1, half2 : (nz, ny, nx) array_like
            Independent half-map reconstructions of the planned shape (converted to float32).
        progress : callable, optional
            Called as ``progress(fraction, message)`` during the work.

        Returns
        -------
        FilterResult

        Raises
        ------
        ValueError
            Shapes differ from each other or from the plan, non-finite or constant input,
            halves that cannot be independent (identical, or anti-correlated: see
            :func:`~locband.engine.fsc.check_independent_halves`).
        """
        return self.filter_owned([np.asarray(half1), np.asarray(half2)], progress=progress)

    def filter_owned(self, halves: list[npt.NDArray[Any]], *,
                     progress: ProgressCallback | None = None) -> FilterResult:
        """Filter a pair of half-maps handed over in a list, which is emptied.

        Same as calling the filter, but the engine holds the only references to the inputs and
        drops them once their spectra are computed: at 256^3 that frees 128 MB for the band
        work. For callers that do not need the inputs afterwards.

        Parameters
        ----------
        halves : list of two (nz, ny, nx) ndarrays
            ``[half1, half2]``; emptied on entry.
        progress : callable, optional
            Called as ``progress(fraction, message)``.

        Returns
        -------
        FilterResult
        """
        if len(halves) != 2:
            raise ValueError(f"halves must hold exactly two half-maps, got {len(halves)}")
        checked = [check_volume(halves[0], name="half1"), check_volume(halves[1], name="half2")]
        halves.clear()
        return self._run(checked, progress)

    def _run(self, halves: list[npt.NDArray[np.float32]], progress: ProgressCallback | None) -> FilterResult:
        """Filter validated float32 halves handed over in a list (emptied on entry)."""
        t0 = time.perf_counter()
        h1, h2 = halves
        halves.clear()
        check_same_shape(h1, h2, names=("half1", "half2"))
        if h1.shape != self.shape:
            raise ValueError(f"half-maps have shape {h1.shape}, but this LocalFilter was planned for {self.shape}")
        report = progress or (lambda fraction, message: None)
        wk, be = self.workers, self.backend
        timings: dict[str, float] = {}
        report(0.0, "Fourier transforms")
        norm = pair_scale(h1, h2)  # mean-free and unit scale inside: see PairScale
        f1 = norm.normalise_spectrum(_fft.rfftn(h1, workers=wk, backend=be))
        f2 = norm.normalise_spectrum(_fft.rfftn(h2, workers=wk, backend=be))
        fsc_unmasked = fsc_from_spectra(f1, f2, self.shape)
        check_independent_halves(fsc_unmasked)
        fsc_masked = None
        if self.mask is not None:
            m1 = norm.normalise_spectrum(_fft.rfftn(masked_for_fsc(h1, self.mask), workers=wk, backend=be))
            m2 = norm.normalise_spectrum(_fft.rfftn(masked_for_fsc(h2, self.mask), workers=wk, backend=be))
            fsc_masked = fsc_from_spectra(m1, m2, self.shape)
            del m1, m2
        # from here on only the spectra are needed: drop the inputs (see filter_owned)
        del h1, h2
        timings["fft_in"] = time.perf_counter() - t0

        lay, par = self.layout, self.params
        outputs = _Outputs(self.shape, lay.grid_shapes, workers=self.workers, backend=self.backend)
        crossing = _Crossing(self.stats_shape, lay.centres, par.criterion)
        snr_bands: list[npt.NDArray[np.float32]] | None = [] if par.keep_band_snr else None
        cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
        t1 = time.perf_counter()
        for b in range(lay.n_bands):
            sig, noise = self._band(b, f1, f2, outputs.add)
            crossing.update(b, sig, noise)
            if snr_bands is not None:
                snr = np.divide(sig, noise, out=np.full_like(sig, _SNR_CAP), where=noise > 0)
                snr_bands.append(np.minimum(snr, _SNR_CAP))
            report(0.05 + 0.9 * cost[b] / cost[-1], f"band {b + 1}/{lay.n_bands}")
        del f1, f2
        out1, out2, outf = outputs.finish()
        norm.restore(out1, out2, outf)
        timings["bands"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        if par.apply_mask and self.mask is not None:
            for o in (out1, out2, outf):
                o *= self.mask
        floor = np.float32(1.0 / max(self.shape))  # a region with no signal at all: one shell
        local_freq = np.maximum(resample_linear(crossing.frequency, self.shape), floor)
        local_res = cycles_to_angstrom(local_freq, pixel_size_angstrom=self.pixel_size_angstrom).astype(np.float32)
        timings["fft_out"] = time.perf_counter() - t2
        timings["total"] = time.perf_counter() - t0
        self.calls += 1
        report(1.0, "done")
        log.debug("filtered %s in %.2f s (%d bands)", self.shape, timings["total"], lay.n_bands)
        return FilterResult(half1=out1, half2=out2, full=outf, local_frequency=local_freq.astype(np.float32),
                            local_resolution_angstrom=local_res, pixel_size_angstrom=self.pixel_size_angstrom,
                            fsc_unmasked=fsc_unmasked, fsc_masked=fsc_masked, bands=lay, params=par,
                            band_snr=None if snr_bands is None else np.stack(snr_bands), timings=timings)


class _Outputs:
    """Sums of the weighted bands of the two halves and the average.

    Bands on cropped grids are summed as spectra on the largest cropped grid; when the first
    full-size band arrives (bands come in increasing order) those sums become real volumes,
    to which the full-size bands are added directly, saving their forward FFTs.
    """

    def __init__(self, shape: tuple[int, ...], grids: tuple[tuple[int, ...], ...], *, workers: int,
                 backend: str) -> None:
        self.shape = shape
        self.workers, self.backend = workers, backend
        cropped = [g for g in grids if g != shape]
        self.acc_grid = tuple(max(g[i] for g in cropped) for i in range(3)) if cropped else shape
        self.spectra: list[npt.NDArray[np.complex64]] = [np.zeros(rfft_shape(self.acc_grid), np.complex64)
                                                         for _ in range(3)]
        self.real: list[npt.NDArray[np.float32]] = []

    def _to_real(self) -> None:
        while self.spectra:
            spec = np.zeros(rfft_shape(self.shape), np.complex64)
            spec[np.ix_(*crop_indices(self.shape, self.acc_grid))] = self.spectra.pop(0)
            self.real.append(_fft.irfftn(spec, self.shape, overwrite_input=True, workers=self.workers,
                                         backend=self.backend))

    def add(self, b: int, o1: npt.NDArray[np.float32], o2: npt.NDArray[np.float32],
            of: npt.NDArray[np.float32]) -> None:
        """Add band ``b``'s weighted half 1, half 2 and average (on the band's grid)."""
        grid = o1.shape
        if grid == self.shape:
            self._to_real()
            for target, part in zip(self.real, (o1, o2, of), strict=True):
                target += part
        else:
            sub = np.ix_(*crop_indices(self.acc_grid, grid))
            for spec, part in zip(self.spectra, (o1, o2, of), strict=True):
                spec[sub] += _fft.rfftn(part, workers=self.workers, backend=self.backend)

    def finish(self) -> tuple[npt.NDArray[np.float32], ...]:
        """The three real output volumes."""
        self._to_real()
        return tuple(self.real)


class _Crossing:
    """Local resolution: where the local half-map FSC first falls below the criterion.

    Bands arrive in increasing order; between two band centres the crossing is interpolated
    linearly in the local FSC. Voxels that never fall below stay at the last centre (Nyquist).
    """

    def __init__(self, shape: tuple[int, ...], centres: tuple[float, ...], criterion: float) -> None:
        self.centres = centres
        self.criterion = np.float32(criterion)
        self.frequency = np.full(shape, centres[-1], np.float32)
        self.found = np.zeros(shape, bool)
        self.prev: npt.NDArray[np.float32] | None = None

    def update(self, b: int, sig: npt.NDArray[np.float32], noise: npt.NDArray[np.float32]) -> None:
        """Take band ``b``'s local signal and noise power (on the coarse statistics grid)."""
        den = sig + noise
        loc = np.divide(sig, den, out=np.ones_like(sig), where=den > 0)  # no noise at all: FSC 1
        crit = self.criterion
        if self.prev is None:
            cross = loc < crit
            self.frequency[cross] = 0.0
        else:
            cross = ~self.found & (loc < crit)
            t = np.clip((self.prev - crit) / np.maximum(self.prev - loc, np.float32(1e-12)), 0, 1)
            c0, c1 = self.centres[b - 1], self.centres[b]
            self.frequency[cross] = (c0 + t * (c1 - c0))[cross]
        self.found |= cross
        self.prev = loc


def local_filter(half1: npt.ArrayLike, half2: npt.ArrayLike, *, pixel_size_angstrom: float,
                 mask: npt.ArrayLike | None = None, params: FilterParams | None = None,
                 workers: int = 1, backend: str | None = None,
                 progress: ProgressCallback | None = None) -> FilterResult:
    """Locally filter two half-maps band by band (one-shot form of :class:`LocalFilter`).

    Parameters
    ----------
    half1, half2 : (nz, ny, nx) array_like
        Independent half-map reconstructions, same shape, converted to float32.
    pixel_size_angstrom : float
        Voxel size in Å (used for the local resolution in Å only).
    mask : (nz, ny, nx) array_like, optional
        Soft mask in [0, 1].
    params : FilterParams, optional
        Settings.
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    FilterResult
        Filtered halves and full map, local resolution, global FSC, band layout.

    Raises
    ------
    ValueError
        Shapes differ, non-finite or constant input, bad mask or settings.
    TypeError
        Non-numeric input.

    Notes
    -----
    Per band and voxel, ``S = max(<b1 b2> - z <(b1-b2)^2>/2 / sqrt(n_eff), 0)`` and
    ``N = <(b1-b2)^2>/2``; halves are weighted by ``S/(S+N)`` and the average by
    ``S/(S+N/2)``, the local analogues of the global ``FSC`` and ``2 FSC/(1+FSC)``.
    """
    h1 = check_volume(half1, name="half1")
    h2 = check_volume(half2, name="half2")
    check_same_shape(h1, h2, names=("half1", "half2"))
    lf = LocalFilter(h1.shape, pixel_size_angstrom=pixel_size_angstrom, mask=mask, params=params,
                     workers=workers, backend=backend)
    return lf._run([h1, h2], progress)  # already validated: once is enough
