"""Local sharpening: restore the amplitude fall-off of each band where the band is significant.

Model-free (no atomic model, no network, no reference profile): the fall-off is read from
the local signal power of the bands themselves. Per voxel of the coarse statistics grid, the
signal power per unit of Fourier space, ``P_b = S_b / V_b`` (``S_b`` the local signal power of
band ``b``, ``V_b`` the fraction of Fourier space the band covers), is fitted over the bands
from ``sharpen_from`` up to the local resolution with a Gaussian (Wilson/Guinier) fall-off,
``ln P_b = a - B s_b^2 / 2``, as RELION's postprocessing does globally. The local ``B`` is then
undone band by band, ``gain_b = exp(B (s_b^2 - s_from^2) / 4)``, capped at ``max_gain``.

Gains only act where a band is significant: with ``q`` the local half-map FSC of the band
(``S / (S + N)``), the gain applied is ``1 + (gain - 1) r(q)`` with ``r`` rising from 0 at
the local-resolution criterion (0.143) to 1 at 0.5. Where a band is not significant the gain
is exactly 1, so noise is never amplified there: its weight stays at most 1.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine._grid import frequency_squared, rfft_multiplicity
from locband.engine.bands import band_weight

__all__ = ["band_volumes", "local_bfactor", "significance_ramp", "sharpening_gain"]

#: q at which the gain is fully applied (the ramp starts at the local-resolution criterion)
_FULL_SIGNIFICANCE = 0.5


def band_volumes(shape: tuple[int, ...], centres: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Fraction of the Fourier space of a ``shape`` box that each band covers (``mean w_b^2``).

    White noise of unit variance has variance ``V_b`` after band ``b``; a band's local power
    divided by ``V_b`` is a power spectral density, comparable between bands of any width.
    Computed from a histogram of the grid's frequencies in fine radial bins (one pass over the
    spectrum), exact up to that binning.
    """
    n = max(shape)
    bins = 4 * n
    s = np.sqrt(frequency_squared(tuple(shape), tuple(1.0 / m for m in shape)))
    idx = np.minimum(np.rint(s * bins).astype(np.intp), bins)  # beyond Nyquist*sqrt3 cannot occur
    counts = np.zeros(bins + 1)
    mult = rfft_multiplicity(tuple(shape))
    for z in range(idx.shape[0]):  # plane by plane: no full-size temporary
        counts += np.bincount(idx[z].ravel(), weights=np.broadcast_to(mult, idx[z].shape).ravel(),
                              minlength=bins + 1)[: bins + 1]
    total = float(np.prod(shape))
    radii = np.arange(bins + 1) / bins
    c = np.asarray(centres)
    return np.array([float(np.sum(counts * band_weight(radii, c, b).astype(np.float64) ** 2)) / total
                     for b in range(len(c))])


def significance_ramp(q: npt.NDArray[np.float32], criterion: float) -> npt.NDArray[np.float32]:
    """0 where the local FSC ``q`` is below ``criterion``, rising linearly to 1 at 0.5."""
    lo = np.float32(criterion)
    span = np.float32(max(_FULL_SIGNIFICANCE - criterion, 1e-6))
    return np.asarray(np.clip((q - lo) / span, 0.0, 1.0), dtype=np.float32)


def local_bfactor(signal: npt.NDArray[np.float32], significance: npt.NDArray[np.float32], *,
                  centres: tuple[float, ...], volumes: npt.NDArray[np.float64], fit_from: float,
                  criterion: float) -> npt.NDArray[np.float32]:
    """Local B-factor (voxels²) of the signal's fall-off, per voxel of a coarse grid.

    Parameters
    ----------
    signal : (n_bands, lz, ly, lx) ndarray of float32
        Local signal power of every band on one coarse grid.
    significance : (n_bands, lz, ly, lx) ndarray of float32
        Local half-map FSC of every band, ``S / (S + N)``.
    centres : tuple of float
        Band centres (cycles/voxel).
    volumes : (n_bands,) ndarray
        :func:`band_volumes`.
    fit_from : float
        Only bands with centres at or above this frequency take part.
    criterion : float
        Bands count with weight ``q - criterion`` (only significant ones).

    Returns
    -------
    (lz, ly, lx) ndarray of float32
        ``B >= 0``: amplitudes fall as ``exp(-B s^2 / 4)``; 0 where fewer than two bands are
        significant or the power does not fall.

    Notes
    -----
    Weighted least squares of ``ln(S_b / V_b)`` on ``s_b^2`` per voxel; ``B = -2 slope``.
    """
    c = np.asarray(centres, dtype=np.float64)
    use = np.nonzero((c >= fit_from) & (np.asarray(volumes) > 0))[0]
    out = np.zeros(signal.shape[1:], np.float32)
    if use.size < 2:
        return out
    x = (c[use] ** 2).astype(np.float32).reshape(-1, 1, 1, 1)
    w = np.clip(significance[use] - np.float32(criterion), 0.0, None)
    w = np.where(signal[use] > 0, w, np.float32(0.0))
    y = np.log(np.maximum(signal[use], np.float32(1e-30)) / volumes[use].astype(np.float32).reshape(-1, 1, 1, 1))
    sw = w.sum(axis=0)
    enough = (w > 0).sum(axis=0) >= 2
    safe = np.where(sw > 0, sw, np.float32(1.0))
    mx = (w * x).sum(axis=0) / safe
    my = (w * y).sum(axis=0) / safe
    sxx = (w * (x - mx) ** 2).sum(axis=0)
    sxy = (w * (x - mx) * (y - my)).sum(axis=0)
    slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, np.float32(1.0)), np.float32(0.0))
    out[...] = np.where(enough, np.maximum(-2.0 * slope, 0.0), 0.0)
    return out


def sharpening_gain(bfactor: npt.NDArray[np.float32] | float, frequency: float, *, start: float,
                    max_gain: float) -> npt.NDArray[np.float32]:
    """Amplitude gain ``exp(B (s^2 - start^2) / 4)`` at frequency ``s``, within ``[1/max_gain, max_gain]``.

    Parameters
    ----------
    bfactor : float or ndarray
        Fall-off to undo (voxels²; positive sharpens).
    frequency : float
        The band's centre ``s`` (cycles/voxel); 1 below ``start``.
    start : float
        Frequency from which the fall-off is restored.
    max_gain : float
        Cap (and ``1/max_gain`` floor, for a negative B that blurs).
    """
    if frequency <= start:
        return np.ones(np.shape(bfactor), np.float32)
    arg = np.asarray(bfactor, dtype=np.float32) * np.float32((frequency ** 2 - start ** 2) / 4.0)
    lim = np.float32(np.log(max_gain))
    return np.asarray(np.exp(np.clip(arg, -lim, lim)), dtype=np.float32)
