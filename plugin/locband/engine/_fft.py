"""The engine's one FFT seam.

Every Fourier transform of the engine goes through :func:`rfftn` and :func:`irfftn` here.
Two backends give the same results (within float32 rounding):

``"pyfftw"``
    Planned FFTW transforms. A plan is made once per (shape, direction, threads) and kept
    for the life of the process, so the bands of one call and the iterations of a refinement
    loop reuse it.
``"scipy"``
    ``scipy.fft`` (pocketfft), used where pyFFTW is missing or when asked for.

Normalisation follows ``norm="forward"``: the forward transform divides by the number of
voxels and the inverse does not. Fourier coefficients are then independent of the grid size,
so a spectrum can be cropped to a smaller grid (Fourier cropping) or zero-padded back without
any rescaling.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

try:  # pragma: no cover - exercised by whichever backend is installed
    import pyfftw

    _HAVE_PYFFTW = True
except ImportError:  # pragma: no cover
    pyfftw = None
    _HAVE_PYFFTW = False

__all__ = ["available_backends", "default_backend", "rfftn", "irfftn", "next_fast_len", "plans_created"]

_PLANS: set[tuple[Any, ...]] = set()
_PLAN_LOCK = threading.Lock()
# FFTW_MEASURE costs seconds per new shape at 256^3; ESTIMATE plans are within ~20 % here and
# are made in milliseconds, which matters because the engine uses many cropped grid sizes.
_PLANNER_EFFORT = "FFTW_ESTIMATE"


def plans_created() -> int:
    """How many distinct pyFFTW transforms (shape, direction, threads) this process has planned.

    FFTW keeps what it learnt when planning a transform, so planning the same transform again
    (every later band or call) takes microseconds; this counts the first plannings only.
    """
    return len(_PLANS)


def available_backends() -> tuple[str, ...]:
    """Names of the FFT backends usable in this process, preferred first."""
    return ("pyfftw", "scipy") if _HAVE_PYFFTW else ("scipy",)


def default_backend() -> str:
    """The backend used when none is asked for: pyFFTW where installed."""
    return available_backends()[0]


def _check_backend(backend: str | None) -> str:
    if backend is None:
        return default_backend()
    if backend not in ("pyfftw", "scipy"):
        raise ValueError(f"FFT backend must be 'pyfftw' or 'scipy', got {backend!r}")
    if backend == "pyfftw" and not _HAVE_PYFFTW:
        raise ValueError("FFT backend 'pyfftw' was asked for, but pyFFTW is not installed")
    return backend


def next_fast_len(n: int) -> int:
    """Smallest size >= n whose FFT is fast (only factors 2, 3, 5, 7 for FFTW and pocketfft)."""
    return int(scipy.fft.next_fast_len(int(n), real=True))


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


def rfftn(x: npt.NDArray[np.float32], *, workers: int = 1,
          backend: str | None = None) -> npt.NDArray[np.complex64]:
    """Forward real FFT over all axes, ``norm="forward"``, complex64 out.

    Parameters
    ----------
    x : (nz, ny, nx) ndarray of float32
        Real volume.
    workers : int
        Threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation; the default is :func:`default_backend`.

    Returns
    -------
    (nz, ny, nx // 2 + 1) ndarray of complex64
        Fourier coefficients divided by the number of voxels.
    """
    backend = _check_backend(backend)
    x = np.asarray(x, dtype=np.float32)
    if backend == "scipy":
        return np.asarray(scipy.fft.rfftn(x, norm="forward", workers=workers), dtype=np.complex64)
    if not x.flags.writeable or not x.flags.c_contiguous:
        x = np.array(x, dtype=np.float32, order="C")
    out: npt.NDArray[np.complex64] = pyfftw.empty_aligned(x.shape[:-1] + (x.shape[-1] // 2 + 1,), dtype="complex64")
    _execute(x, out, "FFTW_FORWARD", workers)
    out *= np.float32(1.0 / x.size)
    return out


def irfftn(f: npt.NDArray[np.complex64], shape: tuple[int, ...], *, workers: int = 1,
           backend: str | None = None, overwrite_input: bool = False) -> npt.NDArray[np.float32]:
    """Inverse of :func:`rfftn` onto a real grid of ``shape`` (no scaling), float32 out.

    Parameters
    ----------
    f : (nz, ny, nx // 2 + 1) ndarray of complex64
        Fourier coefficients as :func:`rfftn` returns them.
    shape : tuple of int
        The real grid ``(nz, ny, nx)``; needed because ``nx`` can be odd.
    workers : int
        Threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.
    overwrite_input : bool
        Allow the transform to destroy ``f`` (saves a copy; multi-dimensional c2r transforms
        always use their input as scratch space).

    Returns
    -------
    (nz, ny, nx) ndarray of float32
    """
    backend = _check_backend(backend)
    shape = tuple(int(n) for n in shape)
    if backend == "scipy":
        return np.asarray(scipy.fft.irfftn(f, s=shape, norm="forward", workers=workers), dtype=np.float32)
    src = f if (overwrite_input and f.dtype == np.complex64 and f.flags.c_contiguous and f.flags.writeable) \
        else np.array(f, dtype=np.complex64, order="C")
    out: npt.NDArray[np.float32] = pyfftw.empty_aligned(shape, dtype="float32")
    _execute(src, out, "FFTW_BACKWARD", workers)
    return out
