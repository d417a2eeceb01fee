"""The local-filtering engine: arrays in, arrays out (no files, no host names)."""

from locband.engine.fsc import fsc
from locband.engine.local import LocalFilter, local_filter
from locband.engine.params import BandLayout, FilterParams, FilterResult, FSCCurve
from locband.engine.wiener import global_wiener_filter

__all__ = ["BandLayout", "FilterParams", "FilterResult", "FSCCurve", "LocalFilter", "fsc",
           "global_wiener_filter", "local_filter"]
