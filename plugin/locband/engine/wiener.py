"""The global FSC-weighted (Wiener) filter: the baseline locband is compared with."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._checks import check_mask, check_same_shape, check_volume, pair_scale
from locband.engine.fsc import fsc_from_spectra, masked_for_fsc, shell_index

__all__ = ["global_wiener_filter"]


def global_wiener_filter(half1: npt.ArrayLike, half2: npt.ArrayLike, *, mask: npt.ArrayLike | None = None,
                         workers: int = 1, backend: str | None = None
                         ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Filter two halves with weights from their global FSC.

    Parameters
    ----------
    half1, half2 : (nz, ny, nx) array_like
        The half-maps.
    mask : array_like, optional
        Soft mask used to measure the FSC (the maps themselves are filtered unmasked), applied
        after removing each half's solvent level (:func:`~locband.engine.fsc.masked_for_fsc`).
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.

    Returns
    -------
    full, filtered_half1, filtered_half2 : (nz, ny, nx) ndarray of float32
        The average weighted by ``2 FSC / (1 + FSC)`` (the Wiener weight for the average of two
        halves), and each half weighted by ``FSC`` (the Wiener weight of one half).

    Notes
    -----
    With half-map SNR ``r`` per shell, ``FSC = r / (1 + r)``; the average has SNR ``2r``, so
    its Wiener weight ``2r / (1 + 2r) = 2 FSC / (1 + FSC)``. Negative FSC values are set to 0.
    """
    h1 = check_volume(half1, name="half1")
    h2 = check_volume(half2, name="half2")
    check_same_shape(h1, h2, names=("half1", "half2"))
    norm = pair_scale(h1, h2)
    f1 = _fft.rfftn(h1, workers=workers, backend=backend)
    f2 = _fft.rfftn(h2, workers=workers, backend=backend)
    if mask is None:
        # a copy: f1 and f2 are filtered at their own scale and keep their mean (FSC of shell 0 is 1)
        curve = fsc_from_spectra(norm.normalise_spectrum(f1.copy()), norm.normalise_spectrum(f2.copy()), h1.shape)
    else:
        m = check_mask(mask, h1.shape)
        curve = fsc_from_spectra(
            norm.normalise_spectrum(_fft.rfftn(masked_for_fsc(h1, m), workers=workers, backend=backend)),
            norm.normalise_spectrum(_fft.rfftn(masked_for_fsc(h2, m), workers=workers, backend=backend)), h1.shape)
    c = np.clip(curve.fsc, 0.0, 1.0)
    w_half = np.append(c, 0.0).astype(np.float32)  # index n_shells = beyond Nyquist -> 0
    w_full = np.append(2 * c / (1 + c), 0.0).astype(np.float32)
    idx, _ = shell_index(h1.shape)
    full = _fft.irfftn((f1 + f2) * 0.5 * w_full[idx], h1.shape, workers=workers, backend=backend)
    o1 = _fft.irfftn(f1 * w_half[idx], h1.shape, workers=workers, backend=backend)
    o2 = _fft.irfftn(f2 * w_half[idx], h1.shape, workers=workers, backend=backend)
    return full, o1, o2
