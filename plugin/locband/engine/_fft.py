"""The engine's one FFT seam.

Every Fourier transform of the engine goes through :func:`rfftn`, :func:`irfftn` and
:func:`rfftn_cropped` here. Three backends give the same results (within float32 rounding):

``"scipy"`` (the default)
    ``scipy.fft`` (pocketfft). A volume is transformed a slab of z-planes at a time along y and
    x (on the filter's threads, in cache) and then along z in place, so the result can be
    written into a buffer the caller reuses. At 256^3 this is 4 times faster than the 3-D
    FFTW plans the engine used before (0.05 against 0.21 CPU-seconds per transform), whose
    ``FFTW_ESTIMATE`` plans stride badly along z for power-of-two boxes, and it plans nothing.
``"pyfftw"``
    Planned FFTW transforms (3-D plans, ``FFTW_ESTIMATE``; FFTW remembers a plan once made).
``"cupy"``
    cuFFT through CuPy, for arrays on a GPU (chosen by ``device="cuda"``, never by name); CuPy
    keeps a cache of cuFFT plans, so a loop over iterations plans once.

Normalisation follows ``norm="forward"``: the forward transform divides by the number of
voxels and the inverse does not. Fourier coefficients are then independent of the grid size,
so a spectrum can be cropped to a smaller grid (Fourier cropping) or zero-padded back without
any rescaling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import scipy.fft

from locband.engine import _device, _slabs
from locband.engine._grid import crop_rows

try:  # pragma: no cover - exercised by whichever backend is installed
    import pyfftw
    import pyfftw.interfaces.cache
    import pyfftw.interfaces.scipy_fft

    pyfftw.interfaces.cache.enable()
    _HAVE_PYFFTW = True
except ImportError:  # pragma: no cover
    pyfftw = None
    _HAVE_PYFFTW = False

__all__ = ["available_backends", "default_backend", "rfftn", "irfftn", "rfftn_slabs", "rfftn_cropped",
           "real_view", "next_fast_len", "plans_created"]

_Complex = npt.NDArray[np.complex64]  # or a CuPy array of that type (backend "cupy")
_Real = npt.NDArray[np.float32]

_PLANS: set[tuple[Any, ...]] = set()
_PLAN_LOCK = threading.Lock()
# FFTW_MEASURE costs seconds per new shape at 256^3; ESTIMATE plans are made in milliseconds,
# which matters because the engine uses many cropped grid sizes.
_PLANNER_EFFORT = "FFTW_ESTIMATE"


def plans_created() -> int:
    """How many distinct transforms (backend, kind, shape, threads) this process has set up.

    Each backend keeps what it learnt for a transform (FFTW's wisdom, pocketfft's and cuFFT's
    plan caches), so the same transform again (every later band or call) needs no new plan;
    this counts the first ones only.
    """
    return len(_PLANS)


def _note(*key: Any) -> None:
    with _PLAN_LOCK:
        _PLANS.add(key)


def available_backends() -> tuple[str, ...]:
    """Names of the CPU FFT backends usable in this process, preferred first."""
    return ("scipy", "pyfftw") if _HAVE_PYFFTW else ("scipy",)


def default_backend() -> str:
    """The CPU backend used when none is asked for: ``"scipy"`` (see the module notes)."""
    return "scipy"


def _check_backend(backend: str | None) -> str:
    if backend is None:
        return default_backend()
    if backend == "cupy":  # internal: chosen by device="cuda"
        return backend
    if backend not in ("pyfftw", "scipy"):
        raise ValueError(f"FFT backend must be 'pyfftw' or 'scipy', got {backend!r}")
    if backend == "pyfftw" and not _HAVE_PYFFTW:
        raise ValueError("FFT backend 'pyfftw' was asked for, but pyFFTW is not installed")
    return backend


def next_fast_len(n: int) -> int:
    """Smallest size >= n whose FFT is fast (only factors 2, 3, 5, 7 for FFTW and pocketfft)."""
    return int(scipy.fft.next_fast_len(int(n), real=True))


def real_view(buf: Any, shape: tuple[int, ...]) -> Any:
    """The real volume of ``shape`` that an rfft spectrum buffer holds in place (padded rows).

    ``buf`` is a C-contiguous complex64 array of shape ``(nz, ny, nx // 2 + 1)``; the view has
    shape ``(nz, ny, nx)`` with rows ``2 * (nx // 2 + 1)`` values apart. :func:`irfftn` with
    ``out=real_view(buf, shape)`` and ``overwrite_input=True`` transforms in place.
    """
    return buf.view(np.float32)[..., :shape[-1]]


# -- per-axis passes of each backend ------------------------------------------------------------
class _Ops:
    """Axis passes (``norm="forward"``) of one backend, for the transforms split over slabs."""

    def __init__(self, backend: str, xp: Any) -> None:
        self.backend, self.xp = backend, xp
        if backend == "cupy":
            self.mod: Any = xp.fft
        elif backend == "pyfftw":
            self.mod = pyfftw.interfaces.scipy_fft
        else:
            self.mod = scipy.fft

    def _kw(self, workers: int, overwrite: bool) -> dict[str, Any]:
        return {} if self.backend == "cupy" else {"workers": workers, "overwrite_x": overwrite}

    def rfft(self, x: Any, axis: int, workers: int) -> Any:
        _note(self.backend, "rfft", x.shape, axis, workers)
        return self.mod.rfft(x, axis=axis, norm="forward", **self._kw(workers, False))

    def fft(self, x: Any, axis: int, workers: int, *, inverse: bool = False, overwrite: bool = False) -> Any:
        _note(self.backend, "ifft" if inverse else "fft", x.shape, axis, workers)
        fn = self.mod.ifft if inverse else self.mod.fft
        return fn(x, axis=axis, norm="forward", **self._kw(workers, overwrite))

    def rfft2(self, x: Any, workers: int) -> Any:
        _note(self.backend, "rfft2", x.shape, workers)
        return self.mod.rfft2(x, axes=(1, 2), norm="forward", **self._kw(workers, False))

    def irfft2(self, x: Any, s: tuple[int, int], workers: int) -> Any:
        _note(self.backend, "irfft2", x.shape, s, workers)
        return self.mod.irfft2(x, s=s, axes=(1, 2), norm="forward", **self._kw(workers, True))


def _ops(backend: str, xp: Any) -> _Ops:
    return _Ops(backend, xp)


def _namespace(backend: str) -> Any:
    return _device.namespace("cuda") if backend == "cupy" else np


# -- pyFFTW: 3-D plans ---------------------------------------------------------------------------
def _execute(src: npt.NDArray[Any], dst: npt.NDArray[Any], direction: str, workers: int) -> None:
    """Plan (or re-plan from FFTW's memory) a transform on these very arrays and run it.

    Plans are built on the caller's arrays rather than on buffers kept per shape: at 256^3 such
    buffers for the dozen grid sizes the engine uses would cost more memory than the maps.
    """
    shape = src.shape if direction == "FFTW_FORWARD" else dst.shape
    with _PLAN_LOCK:
        _PLANS.add((shape, direction, workers))
        flags = (_PLANNER_EFFORT,) if direction == "FFTW_FORWARD" else (_PLANNER_EFFORT, "FFTW_DESTROY_INPUT")
        plan = pyfftw.FFTW(src, dst, axes=tuple(range(src.ndim)), direction=direction, flags=flags,
                           threads=workers)
    plan.execute()


def rfftn(x: Any, *, workers: int = 1, backend: str | None = None,
          out: Any = None) -> npt.NDArray[np.complex64]:
    """Forward real FFT over all axes, ``norm="forward"``, complex64 out.

    Parameters
    ----------
    x : (nz, ny, nx) ndarray of float32
        Real volume (a CuPy array for the ``"cupy"`` backend; NumPy input is moved there).
    workers : int
        Threads.
    backend : {"scipy", "pyfftw"}, optional
        FFT implementation; the default is :func:`default_backend`.
    out : (nz, ny, nx // 2 + 1) ndarray of complex64, optional
        Where to write the result (a buffer the caller reuses).

    Returns
    -------
    (nz, ny, nx // 2 + 1) ndarray of complex64
        Fourier coefficients divided by the number of voxels.
    """
    backend = _check_backend(backend)
    xp = _namespace(backend)
    if backend == "cupy":
        res = xp.fft.rfftn(xp.asarray(x, dtype=xp.float32), axes=(0, 1, 2), norm="forward")
        _note(backend, "rfftn", tuple(x.shape))
        if out is None:
            return cast(_Complex, res)
        out[...] = res
        return cast(_Complex, out)
    x = np.asarray(x, dtype=np.float32)
    shape = x.shape[:-1] + (x.shape[-1] // 2 + 1,)
    if backend == "pyfftw":
        if not x.flags.writeable or not x.flags.c_contiguous:
            x = np.array(x, dtype=np.float32, order="C")
        if out is None:
            out = pyfftw.empty_aligned(shape, dtype="complex64")
        _execute(x, out, "FFTW_FORWARD", workers)
        out *= np.float32(1.0 / x.size)
        return cast(_Complex, out)
    if out is None:
        out = np.empty(shape, np.complex64)
    rfftn_slabs(lambda z0, z1: (x[z0:z1],), x.shape, [out], workers=workers, backend=backend)
    return cast(_Complex, out)


def rfftn_slabs(produce: Callable[[int, int], Sequence[Any]], shape: tuple[int, ...], outs: Sequence[Any], *,
                workers: int = 1, backend: str | None = None) -> None:
    """Forward transforms (as :func:`rfftn`) of volumes made slab by slab, into given buffers.

    Parameters
    ----------
    produce : callable
        ``produce(z0, z1)`` returns one real array per buffer: planes ``z0:z1`` of each volume.
        It may read planes ``z0:z1`` of ``real_view(out)`` (the transform then runs in place:
        those planes are written only after ``produce`` has returned them).
    shape : tuple of int
        The volumes' grid ``(nz, ny, nx)``.
    outs : list of (nz, ny, nx // 2 + 1) ndarray of complex64
        C-contiguous buffers for the spectra.
    workers : int
        Threads.
    backend : {"scipy", "pyfftw"}, optional
        FFT implementation.
    """
    backend = _check_backend(backend)
    xp = _namespace(backend)
    nz, ny, nx = shape
    if backend == "cupy":
        for out, vol in zip(outs, produce(0, nz), strict=True):
            out[...] = xp.fft.rfftn(vol, axes=(0, 1, 2), norm="forward")
            _note(backend, "rfftn", tuple(shape))
        return
    if backend == "pyfftw":  # the volumes in place in the buffers, then 3-D plans in place
        views = [real_view(out, shape) for out in outs]

        def fill(z0: int, z1: int) -> None:
            for view, vol in zip(views, produce(z0, z1), strict=True):
                view[z0:z1] = vol

        _slabs.run(fill, nz, rows=_slabs.slab_rows(nz, ny * nx, np), workers=workers)
        for view, out in zip(views, outs, strict=True):
            _execute(view, out, "FFTW_FORWARD", workers)
            out *= np.float32(1.0 / (nz * ny * nx))
        return
    ops = _ops(backend, np)

    def xy(z0: int, z1: int) -> None:
        spectra = [ops.rfft2(vol, 1) for vol in produce(z0, z1)]
        for out, spec in zip(outs, spectra, strict=True):
            out[z0:z1] = spec

    _slabs.run(xy, nz, rows=_slabs.slab_rows(nz, ny * nx, np), workers=workers)
    for out in outs:
        res = ops.fft(out, 0, workers, overwrite=True)
        if not np.shares_memory(res, out):  # pragma: no cover - scipy transforms contiguous complex64 in place
            out[...] = res


def irfftn(f: Any, shape: tuple[int, ...], *, workers: int = 1, backend: str | None = None,
           overwrite_input: bool = False, out: Any = None) -> npt.NDArray[np.float32]:
    """Inverse of :func:`rfftn` onto a real grid of ``shape`` (no scaling), float32 out.

    Parameters
    ----------
    f : (nz, ny, nx // 2 + 1) ndarray of complex64
        Fourier coefficients as :func:`rfftn` returns them.
    shape : tuple of int
        The real grid ``(nz, ny, nx)``; needed because ``nx`` can be odd.
    workers : int
        Threads.
    backend : {"scipy", "pyfftw"}, optional
        FFT implementation.
    overwrite_input : bool
        Allow the transform to destroy ``f`` (saves a copy).
    out : (nz, ny, nx) ndarray of float32, optional
        Where to write the result; may be :func:`real_view` of ``f`` itself (then
        ``overwrite_input`` must be true): the transform then runs in place.

    Returns
    -------
    (nz, ny, nx) ndarray of float32
    """
    backend = _check_backend(backend)
    shape = tuple(int(n) for n in shape)
    xp = _namespace(backend)
    if backend == "cupy":
        res = xp.fft.irfftn(xp.asarray(f), s=shape, axes=(0, 1, 2), norm="forward")
        _note(backend, "irfftn", shape)
        if out is None:
            return cast(_Real, res)
        out[...] = res
        return cast(_Real, out)
    if backend == "pyfftw":
        src = f if (overwrite_input and f.dtype == np.complex64 and f.flags.c_contiguous and f.flags.writeable) \
            else np.array(f, dtype=np.complex64, order="C")
        if out is None:
            out = pyfftw.empty_aligned(shape, dtype="float32")
        _execute(src, out, "FFTW_BACKWARD", workers)
        return cast(_Real, out)
    ops = _ops(backend, np)
    if not overwrite_input or f.dtype != np.complex64:
        f = np.array(f, dtype=np.complex64, order="C")
    t = ops.fft(f, 0, workers, inverse=True, overwrite=True)
    if out is None:
        out = np.empty(shape, np.float32)

    def xy(z0: int, z1: int) -> None:
        out[z0:z1] = ops.irfft2(t[z0:z1], (shape[1], shape[2]), 1)

    _slabs.run(xy, shape[0], rows=_slabs.slab_rows(shape[0], shape[1] * shape[2], np), workers=workers)
    return cast(_Real, out)


def rfftn_cropped(produce: Callable[[int, int], Sequence[Any]], shape: tuple[int, ...], crop: tuple[int, ...], *,
                  count: int, workers: int = 1, backend: str | None = None) -> list[Any]:
    """Spectra (as :func:`rfftn`) of volumes made slab by slab, computed only where a Fourier crop keeps them.

    Parameters
    ----------
    produce : callable
        ``produce(z0, z1)`` returns ``count`` real arrays: planes ``z0:z1`` of each volume.
    shape : tuple of int
        The volumes' grid ``(nz, ny, nx)``.
    crop : tuple of int
        The smaller grid ``(cz, cy, cx)`` to crop the spectra to.
    count : int
        How many volumes ``produce`` makes.
    workers : int
        Threads.
    backend : {"scipy", "pyfftw"}, optional
        FFT implementation.

    Returns
    -------
    list of (cz, cy, cx // 2 + 1) ndarray of complex64
        ``rfftn(volume)`` Fourier-cropped to ``crop`` (see :func:`locband.engine._grid.crop_indices`).

    Notes
    -----
    The x pass runs over every row, the y pass only over the kept x frequencies and the z
    pass only over the kept (y, x) ones: for a band's local statistics (kept grid a third of
    the band's on each axis) that is about half the work of the full transform, and no
    volume-sized array is made.
    """
    backend = _check_backend(backend)
    xp = _namespace(backend)
    ops = _ops(backend, xp)
    nz, ny, nx = shape
    cz, cy, cx = crop
    cxh = cx // 2 + 1
    partial = [xp.empty((nz, cy, cxh), dtype=xp.complex64) for _ in range(count)]
    y_rows = crop_rows(ny, cy, 0, cy)
    host = _device.is_host(xp)

    def xy(z0: int, z1: int) -> None:
        for part, vol in zip(partial, produce(z0, z1), strict=True):
            s = ops.rfft(vol, 2, 1 if host else workers)[..., :cxh]
            s = ops.fft(s, 1, 1 if host else workers, overwrite=True)
            for in_full, in_crop in y_rows:
                part[z0:z1, in_crop] = s[:, in_full]

    _slabs.run(xy, nz, rows=_slabs.slab_rows(nz, ny * nx, xp), workers=workers)
    out = []
    for part in partial:
        t = ops.fft(part, 0, workers, overwrite=True)
        res = xp.empty((cz, cy, cxh), dtype=xp.complex64)
        for in_full, in_crop in crop_rows(nz, cz, 0, cz):
            res[in_crop] = t[in_full]
        out.append(res)
    return out
