"""Band-wise local statistics of two half-maps: what every local filter rests on (:class:`LocalStatistics`).

For every band (see :mod:`locband.engine.bands`) both halves are brought back to real space
on a Fourier-cropped grid just large enough for the band. Around every voxel a Gaussian window
whose sigma is a fixed number of the band's wavelengths gives

* ``C = <b1 b2>``, the local cross-power (signal power: the noise of the halves is independent),
* ``D = <(b1 - b2)^2> / 2``, the local noise power of one half.

The noise power is smoothed over a window ``_NOISE_WINDOW`` times as wide (noise varies slowly,
and a steadier denominator makes steadier weights). The signal estimate is corrected for the
finite window in two steps (:meth:`LocalStatistics._signal`): ``C`` is shrunk towards the band's
global level, ``x = mu + k (C - mu)``, by as much as its spatial variation does not exceed the
noise, then a non-negative garrote, ``S = max(x - (z k sd)^2 / x, 0)`` with ``sd = D /
sqrt(n_eff)`` the standard deviation of ``C`` on pure noise for this band and window: local
correlations within a few ``sd`` of zero are removed, strong ones are kept almost unbiased.

Cost: the smoothed statistics are band-limited by their window, so they are kept on a small
grid (their transforms compute only the frequencies the window passes).

Device: the array code is written against one namespace ``xp``, NumPy for ``device="cpu"`` or
CuPy for ``device="cuda"`` (:mod:`locband.engine._device`), chosen once per filter.

Consumers: the linear filter (:class:`locband.engine.local.LocalFilter`, which documents the
parameters of the plan) and the interpretation map (:mod:`locband.engine.denoise`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from locband.engine import _device, _fft, _slabs
from locband.engine._checks import check_mask, check_positive
from locband.engine._device import Array, to_host
from locband.engine._grid import crop_blocks, crop_rows, frequency_squared_rows, rfft_shape
from locband.engine._interp import resample_rows
from locband.engine._outputs import _Outputs
from locband.engine.bands import band_layout, band_weight, gaussian_window
from locband.engine.params import FilterParams
from locband.engine.units import cycles_to_angstrom

__all__ = ["LocalStatistics"]

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
    windows: tuple[Array, Array] | None  # LocalStatistics._windows, kept for small statistics grids
    weight: Array | None  # band weight on the band's spectrum, kept for small grids


class LocalStatistics:
    """The plan of a local filter (box, voxel size, mask, settings, bands, device) and each band's statistics.

    Parameters, their checks and the errors raised are those of
    :class:`~locband.engine.local.LocalFilter`, the filter built on this plan.
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
        self.calls = 0  # pairs filtered with this plan (counted by the filter)

    # -- one band -------------------------------------------------------------------------
    def _band_stats(self, b: int, f1: Array, f2: Array, *, maps: Sequence[Array] | None = None
                    ) -> tuple[Array, Array, Array, Array]:
        """Band ``b`` of both halves and its local statistics.

        This is the seam shared by every consumer of the band-wise statistics (the linear
        filter, the interpretation map): it returns ``(b1, b2, signal, noise)``,
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
