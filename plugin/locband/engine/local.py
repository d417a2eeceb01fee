"""Local band-wise Wiener filtering of two half-maps.

Every band's local signal power ``S`` and noise power ``D`` of one half come from the plan the
filter is built on (:class:`locband.engine._local_stats.LocalStatistics`: band maps on
Fourier-cropped grids, windowed statistics, the corrected signal estimate). The local half-map
FSC is ``S / (S + D)``; it is the Wiener weight of one half, and ``S / (S + D / 2)`` that of the
average. The local resolution is where the local FSC first falls below the criterion
(:class:`locband.engine._crossing._Crossing`).

Cost and memory: the statistics are kept on a small grid and the weights are brought back by
separable linear interpolation. Bands whose grid is the full box are weighted and summed in
real space; the smaller ones are summed as Fourier-cropped spectra and transformed back once
(:class:`locband.engine._outputs._Outputs`). Volume-sized work runs over slabs of planes on the
filter's threads (:mod:`locband.engine._slabs`); band maps are transformed in place in their
spectrum buffers, and the full-size buffers are reused by every full-size band of a call.

Device: the array code is written against one namespace ``xp``, NumPy for ``device="cpu"`` or
CuPy for ``device="cuda"`` (:mod:`locband.engine._device`), chosen once per filter. Inputs go
to the device after the checks and results come back at the end; nothing in between.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._checks import PairScale, check_same_shape, check_volume, pair_scale
from locband.engine._crossing import _Crossing
from locband.engine._device import Array, to_host
from locband.engine._heap import trim_heap
from locband.engine._interp import resample_linear
from locband.engine._local_stats import LocalStatistics
from locband.engine._outputs import _Outputs
from locband.engine.fsc import check_independent_halves, fsc_from_spectra, masked_for_fsc
from locband.engine.params import FilterParams, FilterResult, FSCCurve, ProgressCallback

__all__ = ["LocalFilter", "local_filter"]

log = logging.getLogger(__name__)

_SNR_CAP = 1e6  # reported SNR where the halves agree exactly (no noise at all)
#: boxes of at least this many voxels are filtered in the lean schedule (see LocalFilter._band):
#: seven full-size volumes at the peak instead of eight (512^3: 3.7 instead of 4.1 GiB, measured),
#: for two more inverse transforms per full-size band but the last (17 % more CPU time, measured at
#: 256^3 with the schedule forced). Below it memory is no concern (under 1 GiB) and speed is.
_LEAN_MIN_VOXELS = 300 ** 3


class LocalFilter(LocalStatistics):
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
        """Filter validated float32 halves handed over in a list (emptied by :meth:`_spectra`)."""
        t0 = time.perf_counter()
        check_same_shape(halves[0], halves[1], names=("half1", "half2"))
        got = halves[0].shape  # the halves stay in the list: _spectra drops them early
        if got != self.shape:
            raise ValueError(f"half-maps have shape {got}, but this LocalFilter was planned for {self.shape}")
        report = progress or (lambda fraction, message: None)
        report(0.0, "Fourier transforms")
        f1, f2, norm, fsc_unmasked, fsc_masked = self._spectra(halves)
        timings = {"fft_in": time.perf_counter() - t0}

        t1 = time.perf_counter()
        outputs, crossing, snr_bands = self._all_bands(f1, f2, report)
        del f1, f2
        out1, out2, outf = outputs.finish()
        norm.restore(out1, out2, outf)
        timings["bands"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        lay, par, xp = self.layout, self.params, self._xp
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

    def _spectra(self, halves: list[npt.NDArray[np.float32]]
                 ) -> tuple[Array, Array, PairScale, FSCCurve, FSCCurve | None]:
        """The halves' normalised spectra, their scale and their global FSCs (unmasked, masked).

        ``halves`` is emptied on entry and each half is dropped as soon as its spectrum is made
        (see :meth:`filter_owned`).
        """
        h1, h2 = halves
        halves.clear()
        wk, be = self.workers, self.backend
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
        return f1, f2, norm, fsc_unmasked, fsc_masked

    def _all_bands(self, f1: Array, f2: Array, report: ProgressCallback
                   ) -> tuple[_Outputs, _Crossing, list[Array] | None]:
        """Every band weighted and summed (the last consumes ``f1`` and ``f2``, see :meth:`_band`).

        Returns the sums, the local-resolution crossing and, with ``params.keep_band_snr``, each
        band's local SNR on the coarse statistics grid.
        """
        lay, par, xp = self.layout, self.params, self._xp
        outputs = _Outputs(self.shape, lay.grid_shapes, workers=self.workers, backend=self.backend, xp=xp)
        crossing = _Crossing(self.stats_shape, lay.centres, par.criterion, xp=xp)
        snr_bands: list[Array] | None = [] if par.keep_band_snr else None
        cost = np.cumsum([float(np.prod(g)) for g in lay.grid_shapes])
        for b in range(lay.n_bands):
            sig, noise = self._band(b, f1, f2, outputs)
            crossing.update(b, sig, noise)
            if snr_bands is not None:
                snr = xp.where(noise > 0, sig / xp.where(noise > 0, noise, 1), np.float32(_SNR_CAP))
                snr_bands.append(xp.minimum(snr, np.float32(_SNR_CAP)))
            report(0.05 + 0.9 * cost[b] / cost[-1], f"band {b + 1}/{lay.n_bands}")
        return outputs, crossing, snr_bands

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
