"""Quality measures against a known truth (tests, demo, benchmarks)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine.fsc import fsc

__all__ = ["real_space_correlation", "fsc_resolution_to_truth"]


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
