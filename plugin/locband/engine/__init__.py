"""The local-filtering engine: arrays in, arrays out (no files, no host names)."""

from locband.engine._denoise_statistics import DenoiseStatistics
from locband.engine.denoise import Denoiser, denoise
from locband.engine.denoise_params import DenoiseParams, DenoiseResult
from locband.engine.fsc import fsc
from locband.engine.local import LocalFilter, local_filter
from locband.engine.params import BandLayout, FilterParams, FilterResult, FSCCurve
from locband.engine.wiener import global_wiener_filter

__all__ = ["BandLayout", "DenoiseParams", "DenoiseResult", "DenoiseStatistics", "Denoiser", "FilterParams",
           "FilterResult", "FSCCurve", "LocalFilter", "denoise", "fsc", "global_wiener_filter", "local_filter"]
