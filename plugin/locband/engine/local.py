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
a small grid (their transforms compute only the frequencies the window passes) and the weights
are brought back by separable linear interpolation. Bands whose grid is the full box are
weighted and summed in real space; the smaller ones are summed as Fourier-cropped spectra and
transformed back once. Volume-sized work runs over slabs of planes on the filter's threads
(:mod:`locband.engine._slabs`); band maps are transformed in place in their spectrum buffers,
and the full-size buffers are reused by every full-size band of a call.

Device: the array code is written against one namespace ``xp``, NumPy for ``device="cpu"`` or
CuPy for ``device="cuda"`` (:mod:`locband.engine._device`), chosen once per filter. Inputs go
to the device after the checks and results come back at the end; nothing in between.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _device, _fft, _slabs
from locband.engine._checks import check_mask, check_positive, check_same_shape, check_volume, pair_scale
from locband.engine._crossing import _Crossing
from locband.engine._device import Array, to_host
from locband.engine._grid import crop_blocks, crop_rows, frequency_squared_rows, rfft_shape
from locband.engine._heap import trim_heap
from locband.engine._interp import resample_linear, resample_rows
from locband.engine._outputs import _Outputs
from locband.engine.bands import band_layout, band_weight, gaussian_window
from locband.engine.fsc import check_independent_halves, fsc_from_spectra, masked_for_fsc
from locband.engine.params import FilterParams, FilterResult, ProgressCallback
from locband.engine.units import cycles_to_angstrom

__all__ = ["LocalFilter", "local_filter"]

log = logging.getLogger(__name__)

_SNR_CAP = 1e6  # reported SNR where the halves agree exactly (no noise at all)
#: boxes of at least this many voxels are filtered in the lean schedule (see LocalFilter._band):
#: seven full-size volumes at the peak instead of eight (512^3: 3.7 instead of 4.1 GiB, measured),
#: for two more inverse transforms per full-size band but the last (17 % more CPU time, measured at
#: 256^3 with the schedule forced). Below it memory is no concern (under 1 GiB) and speed is.
_LEAN_MIN_VOXELS = 300 ** 3
#: band weights of at most this many coefficients (4 MiB) are kept between calls: keeping the
#: larger ones would hold 120 MiB at 512^3, for about 0.05 CPU-s per call at 256^3
_KEEP_WEIGHT_ELEMENTS = 1 << 20
#: the same for the windows of the statistics (2 MiB each): at 512^3 all of them would hold 50 MiB
_KEEP_WINDOW_ELEMENTS = 1 << 19
_NOISE_WINDOW = 2.0  # noise window sigma relative to the signal window (measured: README)


@dataclass
class _BandSetup:
    """What band ``b`` needs on every call: its grids, windows and (for small grids) weights."""

    grid: tuple[int, ...]
    small: tuple[int, ...]
    windows: tuple[Array, Array] | None  # LocalFilter._windows, kept for small statistics grids
    weight: Array | None  # band weight on the band's spectrum, kept for small grids


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
        Threads (FFTs and the work over slabs of the volume).
    backend : {"scipy", "pyfftw"}, optional
        FFT implementation on the CPU (default ``"scipy"``, see :mod:`locband.engine._fft`).
    device : {"cpu", "cuda"}
        Where the arrays live and the work runs: ``"cuda"`` runs on a GPU through CuPy
        (``pip install 'locband[gpu]'``); inputs and results stay NumPy arrays.

    Raises
    ------
    ValueError
        Bad shape, voxel size, mask, settings or device; ``device="cuda"`` without CuPy or a GPU
        (:class:`~locband.engine._device.DeviceUnavailableError`, naming what to install).
    """

    def __init__(self, shape: tuple[int, ...], *, pixel_size_angstrom: float,
                 mask: npt.ArrayLike | None = None, params: FilterParams | None = None,
                 workers: int = 1, backend: str | None = None, device: str = "cpu") -> None:
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
        if device == "cuda" and backend is not None:
            raise ValueError(f"backend={backend!r} chooses the FFT on the CPU; with device 'cuda' the FFTs are "
                             "cuFFT's (leave backend unset)")
        self._xp = _device.namespace(device)
        self.device = device
        if device == "cuda":
            self.backend = "cupy"
        else:
            self.backend = backend if backend is not None else _fft.default_backend()
            _fft.rfftn(np.zeros((2, 2, 2), np.float32), backend=self.backend)  # validates the name
        self.mask = None if mask is None else check_mask(mask, shape)
        self._mask_x = None if self.mask is None else _device.to_device(self.mask, self._xp)
        self.layout = band_layout(shape, self.params)
        self.stats_shape = tuple(min(n, self.params.stats_grid) for n in shape)
        self._steps = tuple(1.0 / n for n in shape)
        self._mask_cache: dict[tuple[int, ...], Array] = {}
        self._setup_cache: dict[int, _BandSetup] = {}
        self.calls = 0

    # -- one band -------------------------------------------------------------------------
    def _band_stats(self, b: int, f1: Array, f2: Array, *, maps: Sequence[Array] | None = None
                    ) -> tuple[Array, Array, Array, Array]:
        """Band ``b`` of both halves and its local statistics.

        This is the seam shared by every consumer of the band-wise statistics (the linear
        filter here, the interpretation map elsewhere): it returns ``(b1, b2, signal, noise)``,
        the band maps on the band's grid ``layout.grid_shapes[b]`` and the local signal and
        noise power of one half on its statistics grid ``layout.stats_shapes[b]``. Arrays are
        of the filter's namespace (NumPy, or CuPy on a GPU); ``f1`` and ``f2`` are the rfft
        spectra of the halves (:func:`locband.engine._fft.rfftn`) and are not changed.

        ``maps``, optional: two C-contiguous complex64 buffers of the band grid's rfft shape;
        the band maps are then made in place in them (``b1``, ``b2`` are views with padded
        rows, :func:`locband.engine._fft.real_view`). By default new buffers are made.
        """
        b1, b2 = self._band_maps(b, f1, f2, maps)
        c, d = self._local_powers(b, b1, b2)
        sig = self._signal(c, d, self.layout.n_effective[b], self.layout.stats_shapes[b])
        return b1, b2, sig, d

    def _band_maps(self, b: int, f1: Array, f2: Array, maps: Sequence[Array] | None
                   ) -> tuple[Array, Array]:
        """The two halves' band ``b`` in real space, each made in place in its spectrum buffer."""
        xp, grid = self._xp, self.layout.grid_shapes[b]
        if maps is None:
            maps = [xp.empty(rfft_shape(grid), dtype=xp.complex64) for _ in range(2)]
        self._band_spectra(b, (f1, f2), maps)
        b1, b2 = (_fft.irfftn(buf, grid, overwrite_input=True, out=_fft.real_view(buf, grid), workers=self.workers,
                              backend=self.backend) for buf in maps)
        return b1, b2

    def _band_spectra(self, b: int, spectra: Sequence[Array], dst: Sequence[Array]) -> None:
        """``dst[i] = spectra[i][crop] * weight``: band ``b`` on the band's grid, slab by slab."""
        xp, setup = self._xp, self._setup(b)
        grid = setup.grid
        mxh = grid[2] // 2 + 1
        y_rows = crop_rows(self.shape[1], grid[1], 0, grid[1])

        def work(z0: int, z1: int) -> None:
            w = setup.weight[z0:z1] if setup.weight is not None else self._weight_rows(b, z0, z1)
            for in_full, in_band in crop_rows(self.shape[0], grid[0], z0, z1):
                wz = w[in_band.start - z0:in_band.stop - z0]
                for y_full, y_band in y_rows:
                    for f, out in zip(spectra, dst, strict=True):
                        xp.multiply(f[in_full, y_full, :mxh], wz[:, y_band], out=out[in_band, y_band])

        _slabs.run(work, grid[0], rows=_slabs.slab_rows(grid[0], grid[1] * mxh, xp), workers=self.workers)

    def _weight_rows(self, b: int, z0: int, z1: int) -> Array:
        """Band ``b``'s weight on planes ``z0:z1`` of its grid's spectrum."""
        s2 = frequency_squared_rows(self.layout.grid_shapes[b], self._steps, z0, z1, self._xp)
        return band_weight(self._xp.sqrt(s2), np.asarray(self.layout.centres), b)

    def _local_powers(self, b: int, b1: Array, b2: Array) -> tuple[Array, Array]:
        """``C = <b1 b2>`` and ``D = <(b1 - b2)^2> / 2`` smoothed by the band's windows, on its small grid."""
        xp, setup = self._xp, self._setup(b)

        def produce(z0: int, z1: int) -> tuple[Array, Array]:
            x1, x2 = b1[z0:z1], b2[z0:z1]
            diff = x1 - x2
            xp.multiply(diff, diff, out=diff)
            return x1 * x2, diff

        cs, ds = _fft.rfftn_cropped(produce, setup.grid, setup.small, count=2, workers=self.workers,
                                    backend=self.backend)
        g_signal, g_noise = setup.windows if setup.windows is not None else self._windows(b)
        cs *= g_signal
        ds *= g_noise
        del g_signal, g_noise
        c = _fft.irfftn(cs, setup.small, overwrite_input=True, workers=self.workers, backend=self.backend)
        d = _fft.irfftn(ds, setup.small, overwrite_input=True, workers=self.workers, backend=self.backend)
        xp.maximum(d, 0, out=d)  # smoothing of a non-negative field: clear rounding below 0
        return c, d

    def _band(self, b: int, f1: Array, f2: Array, outputs: _Outputs) -> tuple[Array, Array]:
        """Weight band ``b`` of both halves and add it to ``outputs`` (bands in increasing order).

        Returns the local signal and noise power on the coarse statistics grid. The last band
        (always full-size) is made in place in ``f1`` and ``f2``, which it consumes: nothing
        needs the spectra after it. In the lean schedule (boxes of at least
        ``_LEAN_MIN_VOXELS``), the statistics of the other full-size bands are computed before
        the first band, while the sums are still small, and their maps are made again one half
        at a time when they are added: one full-size buffer instead of two next to the three
        output volumes, for two more inverse transforms per such band.
        """
        lay, grid = self.layout, self.layout.grid_shapes[b]
        if outputs.early is None:
            outputs.early = self._early_statistics(f1, f2, outputs) if self._lean() else {}
        if b in outputs.early:
            w_half, stats = outputs.early.pop(b)
            outputs.add_one_at_a_time(grid, lambda f, buf: self._one_map(b, f, buf), (f1, f2), w_half)
            return stats
        last = b == lay.n_bands - 1
        if last:  # made in the spectra's memory: the full-size map buffers can go
            outputs.release_map_buffers()
        maps = (f1, f2) if last else outputs.map_buffers(grid)
        _, _, sig, d = self._band_stats(b, f1, f2, maps=maps)
        outputs.add_weighted(grid, maps, self._half_weight(sig, d))
        if last:  # nothing needs the spectra any more: their memory will hold the results
            outputs.spare.extend(maps)
        return resample_linear(sig, self.stats_shape), resample_linear(d, self.stats_shape)

    def _lean(self) -> bool:
        return int(np.prod(self.shape)) >= _LEAN_MIN_VOXELS

    def _early_statistics(self, f1: Array, f2: Array, outputs: _Outputs
                          ) -> dict[int, tuple[Array, tuple[Array, Array]]]:
        """Half weights and coarse statistics of the full-size bands but the last, made before any band is summed."""
        lay, out = self.layout, {}
        for b in range(lay.n_bands - 1):
            if lay.grid_shapes[b] == self.shape:
                _, _, sig, d = self._band_stats(b, f1, f2, maps=outputs.map_buffers(self.shape, start=False))
                out[b] = (self._half_weight(sig, d), (resample_linear(sig, self.stats_shape),
                                                      resample_linear(d, self.stats_shape)))
        outputs.release_map_buffers()  # the sums of the cropped bands need the room now
        trim_heap()
        return out

    def _one_map(self, b: int, f: Array, buf: Array) -> Array:
        """Band ``b`` of one half in real space, made in place in ``buf``."""
        grid = self.layout.grid_shapes[b]
        self._band_spectra(b, (f,), (buf,))
        return _fft.irfftn(buf, grid, overwrite_input=True, out=_fft.real_view(buf, grid), workers=self.workers,
                           backend=self.backend)

    def _half_weight(self, sig: Array, d: Array) -> Array:
        """The weight of one half, ``S / (S + N)`` (0 where there is neither), on the statistics grid."""
        xp = self._xp
        den = sig + d
        return xp.where(den > 0, sig / xp.where(den > 0, den, 1), np.float32(0))

    def _setup(self, b: int) -> _BandSetup:
        """Band ``b``'s grids and windows (and weights for small grids), made once per filter.

        Band weights are kept only for grids of at most ``_KEEP_WEIGHT_ELEMENTS`` coefficients;
        larger ones are made slab by slab on every call instead.
        """
        cached = self._setup_cache.get(b)
        if cached is not None:
            return cached
        grid, small = self.layout.grid_shapes[b], self.layout.stats_shapes[b]
        keep = int(np.prod(rfft_shape(grid))) <= _KEEP_WEIGHT_ELEMENTS
        setup = _BandSetup(grid=grid, small=small,
                           windows=self._windows(b) if int(np.prod(rfft_shape(small))) <= _KEEP_WINDOW_ELEMENTS
                           else None,
                           weight=self._weight_rows(b, 0, grid[0]) if keep else None)
        self._setup_cache[b] = setup
        return setup

    def _windows(self, b: int) -> tuple[Array, Array]:
        """Band ``b``'s windows on its statistics grid's spectrum: of ``C``, and of ``D`` times its 1/2."""
        lay, small = self.layout, self.layout.stats_shapes[b]
        s2 = frequency_squared_rows(small, self._steps, 0, small[0])  # frequencies per original voxel
        gs = gaussian_window(s2, lay.sigma_voxels[b])
        gn = gaussian_window(s2, lay.sigma_voxels[b] * _NOISE_WINDOW) * np.float32(0.5)
        return _device.to_device(gs, self._xp), _device.to_device(gn, self._xp)

    def _small_mask(self, small: tuple[int, ...]) -> Array | None:
        """The mask Fourier-cropped to a statistics grid (all of them made from one transform)."""
        if self.mask is None:
            return None
        if small not in self._mask_cache:
            spec = _fft.rfftn(self.mask, backend="scipy")
            for grid in set(self.layout.stats_shapes) | {small}:
                crop = np.empty(rfft_shape(grid), np.complex64)
                for in_full, in_crop in crop_blocks(self.shape, grid):
                    crop[in_crop] = spec[in_full]
                m = _fft.irfftn(crop, grid, backend="scipy", overwrite_input=True).clip(0, 1)
                self._mask_cache[grid] = _device.to_device(m, self._xp)
        return self._mask_cache[small]

    def _signal(self, c: Array, d: Array, n_eff: float, small: tuple[int, ...]) -> Array:
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
        xp = self._xp
        m = self._small_mask(small)
        v = xp.square(d)
        v *= np.float32(1.0 / n_eff)
        wsum = float(m.sum()) if m is not None else float(c.size)

        def mean(a: Array) -> float:
            return float((a * m).sum()) / wsum if m is not None else float(a.mean())

        level = mean(c)
        prior = np.float32(level) * m if m is not None else np.float32(level)
        x = c - prior
        tau2 = max(mean(xp.square(x)) - mean(v), 0.0)
        if tau2 > 0:  # k = tau2 / (tau2 + v), in v's memory
            k = v
            k += np.float32(tau2)
            xp.divide(np.float32(tau2), k, out=k)
        else:
            k = xp.zeros_like(c)
        del v
        x *= k  # x = prior + k (c - prior), then clipped at 0
        x += prior
        xp.maximum(x, 0, out=x)
        sd = d * k
        sd *= np.float32(self.params.noise_threshold / math.sqrt(n_eff))
        xp.square(sd, out=sd)
        # the garrote: x - sd / x where x > 0; where x is 0, max(0 - sd, 0) is 0 whatever sd is
        sd /= xp.where(x > 0, x, np.float32(1))
        x -= sd
        return xp.maximum(x, 0, out=x)

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
        fsc_masked = None
        if self.mask is not None:  # first: then each half can go as soon as its spectrum is made
            m1 = norm.normalise_spectrum(_fft.rfftn(masked_for_fsc(h1, self.mask), workers=wk, backend=be))
            m2 = norm.normalise_spectrum(_fft.rfftn(masked_for_fsc(h2, self.mask), workers=wk, backend=be))
            fsc_masked = fsc_from_spectra(m1, m2, self.shape)
            del m1, m2
        # from here on only the spectra are needed: drop the inputs (see filter_owned)
        f1 = norm.normalise_spectrum(_fft.rfftn(h1, workers=wk, backend=be))
        del h1
        f2 = norm.normalise_spectrum(_fft.rfftn(h2, workers=wk, backend=be))
        del h2
        fsc_unmasked = fsc_from_spectra(f1, f2, self.shape)
        check_independent_halves(fsc_unmasked)
        timings["fft_in"] = time.perf_counter() - t0

        lay, par, xp = self.layout, self.params, self._xp
        outputs = _Outputs(self.shape, lay.grid_shapes, workers=self.workers, backend=self.backend, xp=xp)
        crossing = _Crossing(self.stats_shape, lay.centres, par.criterion, xp=xp)
        snr_bands: list[Array] | None = [] if par.keep_band_snr else None
        cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
        t1 = time.perf_counter()
        for b in range(lay.n_bands):
            sig, noise = self._band(b, f1, f2, outputs)
            crossing.update(b, sig, noise)
            if snr_bands is not None:
                snr = xp.where(noise > 0, sig / xp.where(noise > 0, noise, 1), np.float32(_SNR_CAP))
                snr_bands.append(xp.minimum(snr, np.float32(_SNR_CAP)))
            report(0.05 + 0.9 * cost[b] / cost[-1], f"band {b + 1}/{lay.n_bands}")
        del f1, f2
        out1, out2, outf = outputs.finish()
        norm.restore(out1, out2, outf)
        timings["bands"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        if par.apply_mask and self.mask is not None:
            for o in (out1, out2, outf):
                o *= self._mask_x
        floor = np.float32(1.0 / max(self.shape))  # a region with no signal at all: one shell
        local_freq, local_res = self._local_resolution(crossing.frequency, floor, outputs)
        out1, out2, outf = (to_host(o) for o in (out1, out2, outf))
        timings["fft_out"] = time.perf_counter() - t2
        timings["total"] = time.perf_counter() - t0
        self.calls += 1
        report(1.0, "done")
        log.debug("filtered %s in %.2f s (%d bands)", self.shape, timings["total"], lay.n_bands)
        return FilterResult(half1=out1, half2=out2, full=outf, local_frequency=local_freq,
                            local_resolution_angstrom=local_res, pixel_size_angstrom=self.pixel_size_angstrom,
                            fsc_unmasked=fsc_unmasked, fsc_masked=fsc_masked, bands=lay, params=par,
                            band_snr=None if snr_bands is None else to_host(xp.stack(snr_bands)), timings=timings)

    def _local_resolution(self, frequency: Array, floor: np.float32, outputs: _Outputs | None = None
                          ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Local frequency (cycles/voxel, at least ``floor``) and resolution (Å) on the full grid, on the host.

        Made in the call's spare full-size buffers when ``outputs`` has them (no new memory).
        """
        xp = self._xp
        if outputs is not None:
            freq, res = outputs.volume(), outputs.volume()
        else:
            freq, res = xp.empty(self.shape, dtype=xp.float32), xp.empty(self.shape, dtype=xp.float32)

        def work(z0: int, z1: int) -> None:
            f = xp.maximum(resample_rows(frequency, self.shape, z0, z1), floor)
            freq[z0:z1] = f
            res[z0:z1] = cycles_to_angstrom(f, pixel_size_angstrom=self.pixel_size_angstrom)

        rows = _slabs.slab_rows(self.shape[0], self.shape[1] * self.shape[2], xp)
        _slabs.run(work, self.shape[0], rows=rows, workers=self.workers)
        return to_host(freq), to_host(res)


def local_filter(half1: npt.ArrayLike, half2: npt.ArrayLike, *, pixel_size_angstrom: float,
                 mask: npt.ArrayLike | None = None, params: FilterParams | None = None,
                 workers: int = 1, backend: str | None = None, device: str = "cpu",
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
        Threads.
    backend : {"scipy", "pyfftw"}, optional
        FFT implementation on the CPU.
    device : {"cpu", "cuda"}
        ``"cuda"``: run on a GPU through CuPy (``pip install 'locband[gpu]'``); inputs and
        results are NumPy arrays either way.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    FilterResult
        Filtered halves and full map, local resolution, global FSC, band layout.

    Raises
    ------
    ValueError
        Shapes differ, non-finite or constant input, bad mask or settings, a device that is not
        available.
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
                     workers=workers, backend=backend, device=device)
    return lf._run([h1, h2], progress)  # already validated: once is enough
