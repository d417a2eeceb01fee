"""locband: local, band-wise filtering of cryo-EM half-maps for refinement loops, and interpretation maps."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("locband")
except PackageNotFoundError:  # running from a source checkout
    __version__ = "0.0.0+source"

from locband.engine import (  # noqa: E402
    BandLayout,
    DenoiseParams,
    Denoiser,
    DenoiseResult,
    DenoiseStatistics,
    FilterParams,
    FilterResult,
    FSCCurve,
    LocalFilter,
    denoise,
    fsc,
    global_wiener_filter,
    local_filter,
)

__all__ = ["__version__", "BandLayout", "DenoiseParams", "DenoiseResult", "DenoiseStatistics", "Denoiser",
           "FilterParams", "FilterResult", "FSCCurve", "LocalFilter", "denoise", "fsc", "global_wiener_filter",
           "local_filter"]
