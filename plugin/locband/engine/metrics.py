"""Quality measures against a known truth (tests, demo, benchmarks)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine import _fft
from locband.engine._grid import rfft_multiplicity
from locband.engine.fsc import fsc, shell_index

__all__ = ["real_space_correlation", "fsc_resolution_to_truth", "shell_scaled_correlation"]


def real_space_correlation(a: npt.ArrayLike, b: npt.ArrayLike, *,
                           weights: npt.ArrayLike | None = None) -> float:
    """Pearson correlation of two volumes, optionally within a (soft or boolean) mask.

    Notes
    -----
    ``sum w (a - <a>)(b - <b>) / sqrt(sum w (a - <a>)^2 sum w (b - <b>)^2)`` with weighted means.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    sw = w.sum()
    if sw <= 0:
        raise ValueError("weights must have a positive sum")
    x = x - (w * x).sum() / sw
    y = y - (w * y).sum() / sw
    den = np.sqrt((w * x * x).sum() * (w * y * y).sum())
    return float((w * x * y).sum() / den) if den > 0 else 0.0


def fsc_resolution_to_truth(estimate: npt.ArrayLike, truth: npt.ArrayLike, *, threshold: float = 0.5,
                            mask: npt.ArrayLike | None = None) -> float:
    """Frequency (cycles/voxel) where the FSC between a map and the truth falls below ``threshold``."""
    return fsc(estimate, truth, mask=mask).crossing(threshold)


def shell_scaled_correlation(estimate: npt.ArrayLike, truth: npt.ArrayLike, *,
                             weights: npt.ArrayLike | None = None) -> float:
    """Correlation with the truth after the best per-shell scale (fitted to the truth).

    Sharpening and other per-shell rescaling change a map's spectrum but not what it knows;
    this measure is blind to them. With ``weights`` (a region), both maps are multiplied by
    the weights first, the scale is fitted on those products, and the correlation is taken
    within the weights.

    Notes
    -----
    Per shell ``k_s = max(Re sum E T* / sum |E|^2, 0)`` (least squares, never flipping a
    shell's sign); the scaled estimate's :func:`real_space_correlation` with the truth.
    """
    e = np.asarray(estimate, dtype=np.float32)
    t = np.asarray(truth, dtype=np.float32)
    w = None if weights is None else np.asarray(weights, dtype=np.float32)
    if w is not None:
        e, t = e * w, t * w
    fe, ft = _fft.rfftn(e, backend="scipy"), _fft.rfftn(t, backend="scipy")
    idx, n = shell_index(e.shape)
    mult = rfft_multiplicity(e.shape)
    num = np.bincount(idx.ravel(), weights=((fe * np.conj(ft)).real * mult).ravel(), minlength=n + 1)
    den = np.bincount(idx.ravel(), weights=((fe.real ** 2 + fe.imag ** 2) * mult).ravel(), minlength=n + 1)
    k = np.where(den > 0, np.maximum(num, 0.0) / np.where(den > 0, den, 1.0), 0.0).astype(np.float32)
    scaled = _fft.irfftn(fe * k[idx], e.shape, backend="scipy")
    return real_space_correlation(scaled, t, weights=w)
