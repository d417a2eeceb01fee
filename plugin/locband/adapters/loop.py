"""Scripted refinement loops: one filter object per refinement, called once per iteration.

Plain Python for people who drive refinement iterations from their own code. The filter is
planned once (box, voxel size, mask, settings) and then called with the two half-maps of each
iteration; band layout, frequency grids, windows and (with pyFFTW) FFT plans are reused, so
every call after the first does no setup work.

Examples
--------
>>> rf = RefinementFilter((64, 64, 64), pixel_size_angstrom=1.2, mask=mask)   # doctest: +SKIP
>>> for it in range(n_iterations):                                             # doctest: +SKIP
...     half1, half2 = reconstruct(it)
...     step = rf(half1, half2)
...     references = (step.half1, step.half2)
...     print(step.call_index, step.fsc_resolution_angstrom)
>>> final = rf.interpretation(half1, half2)   # to look at and build into, never a reference  # doctest: +SKIP

The references of the next iteration are always the linear filter's (:class:`LoopStep`).
:meth:`RefinementFilter.interpretation` makes the interpretation map of an iteration's
half-maps (``locband denoise``): non-linear, for model building and viewing only, never the
next iteration's references. The loop API returns results and raises ``ValueError`` on bad
input; it never writes files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from locband._threads import default_threads
from locband.engine import _fft
from locband.engine.denoise import Denoiser
from locband.engine.denoise_params import DenoiseParams, DenoiseResult
from locband.engine.local import LocalFilter
from locband.engine.params import CROSSED, GOLD_STANDARD_FSC, FilterParams, FilterResult, ProgressCallback
from locband.engine.units import fsc_resolution_angstrom

__all__ = ["LoopStep", "RefinementFilter"]

#: the half-map FSC threshold of each step's global resolution (the gold standard)
FSC_THRESHOLD = GOLD_STANDARD_FSC


@dataclass(frozen=True)
class LoopStep:
    """What one iteration of :class:`RefinementFilter` returns.

    Attributes
    ----------
    half1, half2 : (nz, ny, nx) ndarray of float32
        Each half locally weighted on its own (weights estimated from both halves): the
        references for the next iteration, which keep the halves independent.
    full : (nz, ny, nx) ndarray of float32
        The locally weighted average of the halves.
    local_resolution_angstrom : (nz, ny, nx) ndarray of float32
        Local resolution in Å.
    fsc_resolution_angstrom : float
        Global resolution (FSC = 0.143) in Å; masked FSC when the filter has a mask. Where the
        FSC never falls below 0.143 this is the last shell (a bound: the resolution is at least
        this), where it is below 0.143 from the first shell on it is ``inf`` (no resolution);
        ``fsc_crossing`` says which.
    call_index : int
        1 for the first call of this filter, 2 for the second, ...
    seconds : float
        Wall-clock time of this call.
    new_fft_plans : int
        FFT plans made during this call (0 once the plans of the box exist).
    result : FilterResult
        The engine's full result (FSC curves, band layout, timings).
    fsc_crossing : str
        ``"crossed"``, ``"above_to_last_shell"`` or ``"below_at_first_shell"``
        (:meth:`~locband.engine.params.FSCCurve.crossing_status`).
    """

    half1: npt.NDArray[np.float32]
    half2: npt.NDArray[np.float32]
    full: npt.NDArray[np.float32]
    local_resolution_angstrom: npt.NDArray[np.float32]
    fsc_resolution_angstrom: float
    call_index: int
    seconds: float
    new_fft_plans: int
    result: FilterResult
    fsc_crossing: str = CROSSED


class RefinementFilter:
    """A local band-wise filter made once per refinement and called every iteration.

    Parameters
    ----------
    shape : tuple of int
        Box ``(nz, ny, nx)`` of the half-maps.
    pixel_size_angstrom : float
        Voxel size in Å.
    mask : (nz, ny, nx) array_like, optional
        Soft mask in [0, 1] (masked global FSC; with ``params.apply_mask`` also masks outputs).
    params : FilterParams, optional
        Engine settings.
    workers : int, optional
        Threads (default: the idle cores this process may use, see :mod:`locband._threads`).
    backend : {"scipy", "pyfftw"}, optional
        FFT implementation on the CPU (default scipy).
    device : {"cpu", "cuda"}
        ``"cuda"``: filter on a GPU through CuPy (``pip install 'locband[gpu]'``); cuFFT plans and
        device memory (CuPy's pool) are reused from call to call.

    Raises
    ------
    ValueError
        Bad shape, voxel size, mask, settings or thread count.

    Notes
    -----
    The setup work (band layout, frequency grids, FFT plans) is done by the first call and
    reused afterwards; :attr:`LoopStep.new_fft_plans` counts what each call had to plan.
    """

    def __init__(self, shape: tuple[int, ...], *, pixel_size_angstrom: float,
                 mask: npt.ArrayLike | None = None, params: FilterParams | None = None,
                 workers: int | None = None, backend: str | None = None, device: str = "cpu") -> None:
        workers = default_threads() if workers is None else workers
        self._filter = LocalFilter(shape, pixel_size_angstrom=pixel_size_angstrom, mask=mask, params=params,
                                   workers=workers, backend=backend, device=device)
        self._denoisers: dict[DenoiseParams, Denoiser] = {}
        self._cpu_backend = backend  # the interpretation map's FFT (it runs on the CPU)
        self.history: list[float] = []

    @property
    def shape(self) -> tuple[int, ...]:
        """The planned box ``(nz, ny, nx)``."""
        return self._filter.shape

    @property
    def pixel_size_angstrom(self) -> float:
        """Voxel size in Å."""
        return self._filter.pixel_size_angstrom

    @property
    def calls(self) -> int:
        """How many pairs of half-maps this filter has processed."""
        return self._filter.calls

    def __call__(self, half1: npt.ArrayLike, half2: npt.ArrayLike, *,
                 progress: ProgressCallback | None = None) -> LoopStep:
        """Filter the half-maps of one iteration.

        Parameters
        ----------
        half1, half2 : (nz, ny, nx) array_like
            The iteration's independent half-map reconstructions (the planned shape).
        progress : callable, optional
            ``progress(fraction, message)`` during the work.

        Returns
        -------
        LoopStep
            Filtered halves and full map, local and global resolution, call index, timing.

        Raises
        ------
        ValueError
            Shapes differ from the plan, non-finite or constant input, halves that cannot be
            independent (identical, or one with inverted contrast).
        """
        t0 = time.perf_counter()
        plans_before = _fft.plans_created()
        res = self._filter(half1, half2, progress=progress)
        curve = res.fsc_masked if res.fsc_masked is not None else res.fsc_unmasked
        value, status = fsc_resolution_angstrom(curve, FSC_THRESHOLD, pixel_size_angstrom=self.pixel_size_angstrom)
        fsc_res = float("inf") if value is None else value
        self.history.append(fsc_res)
        return LoopStep(half1=res.half1, half2=res.half2, full=res.full,
                        local_resolution_angstrom=res.local_resolution_angstrom, fsc_resolution_angstrom=fsc_res,
                        call_index=self.calls, seconds=time.perf_counter() - t0,
                        new_fft_plans=_fft.plans_created() - plans_before, result=res, fsc_crossing=status)

    def interpretation(self, half1: npt.ArrayLike, half2: npt.ArrayLike, *, params: DenoiseParams | None = None,
                       progress: ProgressCallback | None = None) -> DenoiseResult:
        """The interpretation map of one iteration's half-maps (``locband denoise``).

        Non-linear: for model building and viewing only. It is never the next iteration's
        reference, and it changes nothing of this filter: the references stay those of
        :meth:`__call__` (:attr:`LoopStep.half1`, :attr:`LoopStep.half2`).

        Parameters
        ----------
        half1, half2 : (nz, ny, nx) array_like
            The iteration's half-maps (the planned shape), as given to :meth:`__call__`.
        params : DenoiseParams, optional
            Settings (:meth:`DenoiseParams.from_physical`); default: the defaults of ``locband
            denoise`` with this filter's bands and statistics.
        progress : callable, optional
            ``progress(fraction, message)`` during the work.

        Returns
        -------
        DenoiseResult
            ``full`` (the interpretation map), ``half1`` and ``half2`` (each processed alone, for
            cross-validation), the cross-validation FSCs, local resolution.

        Raises
        ------
        ValueError
            As :meth:`__call__`; bad settings.

        Notes
        -----
        The interpretation map is planned once per setting and reused (on the CPU, also for a
        filter made with ``device="cuda"``).
        """
        if params is None:
            bands = replace(self._filter.params, apply_mask=False, keep_band_snr=False)
            params = DenoiseParams.from_physical(pixel_size_angstrom=self.pixel_size_angstrom, filter=bands)
        if params not in self._denoisers:
            f = self._filter
            self._denoisers[params] = Denoiser(self.shape, pixel_size_angstrom=self.pixel_size_angstrom, mask=f.mask,
                                               params=params, workers=f.workers, backend=self._cpu_backend)
        return self._denoisers[params](half1, half2, progress=progress)
