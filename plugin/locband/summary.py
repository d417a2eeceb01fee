"""The summary of a run (``summary.json``) and how its numbers are phrased.

One vocabulary for every host: the keys ``fsc_0143_angstrom`` / ``fsc_05_angstrom`` (by the
thresholds of :data:`~locband.engine.params.FSC_THRESHOLDS`), ``fsc_crossing`` (whether a value
is a crossing or the last shell as a bound), ``local_resolution_angstrom`` (percentiles within
the mask) and the phrase :func:`fsc_text` that every host prints after "FSC=0.143".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from locband import __version__
from locband.engine.params import CROSSED, FSC_THRESHOLDS, FilterResult, FSCCurve
from locband.engine.units import describe_fsc_resolution, fsc_resolution_angstrom

__all__ = ["MASK_INSIDE", "PERCENTILES", "summarise", "fsc_entries", "fsc_text", "local_resolution_percentiles",
           "inside_mask", "within_text", "rounded_timings"]

#: a voxel is inside a soft mask where the mask is above this (histograms, percentiles, overlays)
MASK_INSIDE = 0.5
#: percentiles of local resolution in a summary
PERCENTILES = (5, 25, 50, 75, 95)


def inside_mask(mask: npt.NDArray[np.floating[Any]] | None, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """Voxels counted as inside the mask (``mask > MASK_INSIDE``); every voxel without a mask."""
    return np.ones(shape, dtype=bool) if mask is None else np.asarray(mask) > MASK_INSIDE


def within_text(mask: object | None) -> str:
    """How summaries and reports say which voxels a statistic covers."""
    return f"mask > {MASK_INSIDE:g}" if mask is not None else "whole box"


def local_resolution_percentiles(local_resolution: npt.NDArray[np.floating[Any]],
                                 mask: npt.NDArray[np.floating[Any]] | None) -> dict[str, float]:
    """Percentiles (:data:`PERCENTILES`) of local resolution inside the mask (the whole box without one)."""
    sel = local_resolution[inside_mask(mask, local_resolution.shape)]
    sel = sel if sel.size else local_resolution
    return {f"p{q}": float(np.percentile(sel, q)) for q in PERCENTILES}


def fsc_entries(unmasked: FSCCurve, masked: FSCCurve | None, *, pixel_size_angstrom: float) -> dict[str, Any]:
    """The global-FSC entries of a summary: the curves, the resolutions and what kind of number each is.

    ``fsc`` (the curves), ``fsc_0143_angstrom`` and ``fsc_05_angstrom`` (None: not reached, the FSC
    is below the threshold from the first shell on) and ``fsc_crossing`` (whether a value is a
    crossing or the last shell as a bound, :meth:`~locband.engine.params.FSCCurve.crossing_status`).
    """
    curves = {"unmasked": unmasked, "masked": masked}
    res = {key: {which: (None, None) if c is None else fsc_resolution_angstrom(c, thr,
                                                                             pixel_size_angstrom=pixel_size_angstrom)
                 for which, c in curves.items()} for key, thr in FSC_THRESHOLDS.items()}
    return {
        "fsc": {which: None if c is None else c.to_dict() for which, c in curves.items()},
        **{f"fsc_{key}_angstrom": {which: v for which, (v, _) in res[key].items()} for key in FSC_THRESHOLDS},
        "fsc_crossing": {key: {which: status for which, (_, status) in res[key].items()} for key in FSC_THRESHOLDS},
    }


def summarise(result: FilterResult, *, inputs: dict[str, str | None], timings: dict[str, float],
              mask: npt.NDArray[np.floating[Any]] | None) -> dict[str, Any]:
    """The JSON summary of one filter run.

    Parameters
    ----------
    result : FilterResult
        What the engine returned.
    inputs : dict
        ``half1``, ``half2``, ``mask`` -> file (or None).
    timings : dict
        Seconds of the stages outside the engine (``read``, ...).
    mask : (nz, ny, nx) ndarray or None
        The mask, for the local-resolution percentiles.
    """
    px = result.pixel_size_angstrom
    return {
        "locband_version": __version__,
        "inputs": inputs,
        "pixel_size_angstrom": px,
        "shape_zyx": list(result.full.shape),
        "settings": result.params.to_dict(),
        "n_bands": result.bands.n_bands,
        "bands": result.bands.to_dict(),
        **fsc_entries(result.fsc_unmasked, result.fsc_masked, pixel_size_angstrom=px),
        "local_resolution_angstrom": {**local_resolution_percentiles(result.local_resolution_angstrom, mask),
                                      "within": within_text(mask), "criterion": result.params.criterion},
        "timings_seconds": rounded_timings(result.timings, timings),
    }


def rounded_timings(*stages: dict[str, float]) -> dict[str, float]:
    """Seconds per stage, to 0.1 ms, the engine's and the host's in one table."""
    return {k: round(v, 4) for timings in stages for k, v in timings.items()}


def fsc_text(summary: dict[str, Any], which: str = "unmasked", threshold: str = "0143") -> str:
    """The FSC resolution of a summary as a phrase to follow "FSC=0.143": "at 4.20 Å", "at <= 3.00 Å (...)", ....

    ``which`` is "unmasked" or "masked", ``threshold`` a key of
    :data:`~locband.engine.params.FSC_THRESHOLDS` ("0143" or "05"). Summaries written before
    the crossing status existed count as crossed.
    """
    value = (summary.get(f"fsc_{threshold}_angstrom") or {}).get(which)
    status = ((summary.get("fsc_crossing") or {}).get(threshold) or {}).get(which) or CROSSED
    return describe_fsc_resolution(value, status, threshold=FSC_THRESHOLDS[threshold])
