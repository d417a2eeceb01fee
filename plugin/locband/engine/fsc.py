"""Global Fourier shell correlation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._checks import check_mask, check_same_shape, check_volume
from locband.engine._device import array_module, to_host
from locband.engine._grid import frequency_squared, frequency_squared_rows, rfft_multiplicity
from locband.engine.params import FSCCurve

__all__ = ["fsc", "fsc_from_spectra", "shell_index"]


def shell_index(shape: tuple[int, ...]) -> tuple[npt.NDArray[np.intp], int]:
    """Shell number of every rfft coefficient: ``round(|k| * max(shape))``, and the shell count.

    Shells are 1/max(shape) cycles/voxel wide; the last shell is Nyquist (0.5).
    """
    n = max(shape)
    s = np.sqrt(frequency_squared(tuple(shape), tuple(1.0 / m for m in shape)))
    idx = np.rint(s * n).astype(np.intp)
    n_shells = n // 2 + 1
    return np.minimum(idx, n_shells), n_shells


def fsc_from_spectra(f1: npt.NDArray[np.complex64], f2: npt.NDArray[np.complex64],
                     shape: tuple[int, ...]) -> FSCCurve:
    """FSC of two rfft spectra of real volumes of ``shape``.

    Shells beyond Nyquist (cube corners) are ignored. Shells with no power give 0. Sums run
    over slabs of planes so that the temporaries stay small for large boxes.
    """
    n = max(shape)
    n_shells = n // 2 + 1
    steps = tuple(1.0 / m for m in shape)
    xp = array_module(f1)  # the spectra may live on a GPU (CuPy): sums there, curve on the host
    mult = xp.asarray(rfft_multiplicity(tuple(shape)))
    sums = xp.zeros((3, n_shells + 1), dtype=xp.float64)
    slab = max(1, 2 ** 22 // max(1, f1[0].size))  # ~4 M coefficients per slab
    for z0 in range(0, f1.shape[0], slab):
        z = slice(z0, z0 + slab)
        s2 = frequency_squared_rows(tuple(shape), steps, z0, min(z0 + slab, f1.shape[0]), xp)
        idx = xp.minimum(xp.rint(xp.sqrt(s2) * n).astype(xp.intp), n_shells).ravel()
        a, b = f1[z], f2[z]
        for k, v in enumerate(((a * xp.conj(b)).real, (a.real ** 2 + a.imag ** 2), (b.real ** 2 + b.imag ** 2))):
            sums[k] += xp.bincount(idx, weights=(v * mult).ravel(), minlength=n_shells + 1)
    sums = to_host(sums)
    num, p1, p2 = sums[0, :n_shells], sums[1, :n_shells], sums[2, :n_shells]
    den = np.sqrt(p1 * p2)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    freq = np.arange(n_shells, dtype=np.float64) / n
    return FSCCurve(frequency=freq, fsc=np.clip(curve, -1.0, 1.0))


def fsc(half1: npt.ArrayLike, half2: npt.ArrayLike, *, mask: npt.ArrayLike | None = None,
        workers: int = 1, backend: str | None = None) -> FSCCurve:
    """Fourier shell correlation between two half-maps.

    Parameters
    ----------
    half1, half2 : (nz, ny, nx) array_like
        The half-maps.
    mask : (nz, ny, nx) array_like, optional
        Soft mask in [0, 1] multiplied into both halves first (a "masked FSC").
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    FSCCurve
        Shells of width ``1/max(shape)`` cycles/voxel from 0 to Nyquist.

    Notes
    -----
    ``FSC(s) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` over the shell of radius ``s``.
    """
    h1 = check_volume(half1, name="half1")
    h2 = check_volume(half2, name="half2")
    check_same_shape(h1, h2, names=("half1", "half2"))
    if mask is not None:
        m = check_mask(mask, h1.shape)
        h1, h2 = h1 * m, h2 * m
    f1 = _fft.rfftn(h1, workers=workers, backend=backend)
    f2 = _fft.rfftn(h2, workers=workers, backend=backend)
    return fsc_from_spectra(f1, f2, h1.shape)
