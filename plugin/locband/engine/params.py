"""The engine's vocabulary: settings in, results out (frozen dataclasses).

The linear filter's settings and results, the band layout and the FSC curve they share with
the interpretation map, whose own settings and results are in :mod:`locband.engine.denoise_params`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from locband.engine.units import ABOVE_TO_LAST_SHELL, BELOW_AT_FIRST_SHELL, CROSSED

__all__ = ["FilterParams", "BandLayout", "FSCCurve", "FilterResult", "CROSSED", "BELOW_AT_FIRST_SHELL",
           "ABOVE_TO_LAST_SHELL", "GOLD_STANDARD_FSC", "FSC_THRESHOLDS", "ProgressCallback"]

#: the gold-standard half-map FSC threshold (Rosenthal & Henderson 2003), as RELION and cryoSPARC use it
GOLD_STANDARD_FSC = 0.143
#: the FSC thresholds locband reports, by the key of the summary (``fsc_0143_angstrom``, ``fsc_05_angstrom``)
FSC_THRESHOLDS = {"0143": GOLD_STANDARD_FSC, "05": 0.5}
#: ``progress(fraction, message)``: how long work reports where it is (fraction in [0, 1])
ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class FilterParams:
    """Settings of the local band-wise filter (all in voxels and cycles/voxel).

    Attributes
    ----------
    band_ratio : float
        Ratio between consecutive band centres where bands are spaced geometrically (> 1).
        The default 2**(1/3) (three bands per octave) is the measured optimum, see the README.
    window_wavelengths : float
        Radius (Gaussian sigma) of the local statistics window of a band, in wavelengths of the
        band's centre frequency: ``sigma_voxels = window_wavelengths / centre``. Every band's
        estimate then rests on about the same number of independent samples.
    min_band_spacing_shells : float
        Below the frequency where geometric spacing would put centres closer than this many
        Fourier shells (1/N), centres are spaced linearly by this many shells.
    max_window_fraction : float
        Cap on the window sigma as a fraction of the smallest box edge (low-frequency bands).
    noise_threshold : float
        ``z`` of the non-negative garrote ``S = max(x - (z k sd)^2 / x, 0)`` applied to the
        local signal ``x`` after its shrinkage towards the band's global level (weight ``k``),
        with ``sd`` the pure-noise standard deviation of a local cross-power (from the window
        and band shape): local correlations within about ``z`` of those standard deviations
        of zero are removed, strong ones are kept almost unbiased. 0 turns the garrote off.
    criterion : float
        Local half-map FSC threshold that defines the local resolution (``GOLD_STANDARD_FSC``,
        as for the global FSC).
    stats_grid : int
        Edge of the coarse grid on which local resolution and per-band SNR are assembled
        (capped at the box); the local resolution map is interpolated back to the full box.
    keep_band_snr : bool
        Return the per-band local SNR volumes (on the coarse grid).
    apply_mask : bool
        Multiply the filtered maps by the mask (if one is given).
    """

    band_ratio: float = 2.0 ** (1.0 / 3.0)
    window_wavelengths: float = 2.0
    min_band_spacing_shells: float = 2.0
    max_window_fraction: float = 0.1
    noise_threshold: float = 1.0
    criterion: float = GOLD_STANDARD_FSC
    stats_grid: int = 64
    keep_band_snr: bool = False
    apply_mask: bool = False

    def __post_init__(self) -> None:
        checks: dict[str, tuple[object, Callable[[float], bool], str]] = {
            "band_ratio": (self.band_ratio, lambda v: 1.0 < v <= 4.0, "a number in (1, 4]"),
            "window_wavelengths": (self.window_wavelengths, lambda v: 0.25 <= v <= 20, "a number in [0.25, 20]"),
            "min_band_spacing_shells": (self.min_band_spacing_shells, lambda v: 1.0 <= v <= 50, "a number in [1, 50]"),
            "max_window_fraction": (self.max_window_fraction, lambda v: 0.01 <= v <= 1.0, "a number in [0.01, 1]"),
            "noise_threshold": (self.noise_threshold, lambda v: 0.0 <= v <= 10.0, "a number in [0, 10]"),
            "criterion": (self.criterion, lambda v: 0.0 < v < 1.0, "a number in (0, 1)"),
            "stats_grid": (self.stats_grid, lambda v: 8 <= v <= 1024, "an integer in [8, 1024]"),
        }
        for name, (value, ok, expected) in checks.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not numeric or not math.isfinite(float(value)) or not ok(float(value)):  # type: ignore[arg-type]
                raise ValueError(f"FilterParams.{name} must be {expected}, got {value!r}")
        if not isinstance(self.stats_grid, int):
            raise ValueError(f"FilterParams.stats_grid must be an integer, got {self.stats_grid!r}")

    def to_dict(self) -> dict[str, object]:
        """Plain dict of the settings (for JSON summaries)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class BandLayout:
    """The bands used by one filter: a partition of unity in spatial frequency.

    Attributes
    ----------
    centres : tuple of float
        Band centres in cycles/voxel, increasing, the first 0 (the low-pass band).
    sigma_voxels : tuple of float
        Gaussian sigma of each band's local statistics window, in voxels.
    grid_shapes : tuple of tuple of int
        The Fourier-cropped grid on which each band is processed.
    stats_shapes : tuple of tuple of int
        The coarser grid on which each band's smoothed local statistics are kept.
    n_effective : tuple of float
        Effective number of independent samples in each band's window (from the window and
        band shape): the pure-noise standard deviation of a local correlation is
        ``1/sqrt(n_effective)``.
    """

    centres: tuple[float, ...]
    sigma_voxels: tuple[float, ...]
    grid_shapes: tuple[tuple[int, ...], ...]
    stats_shapes: tuple[tuple[int, ...], ...]
    n_effective: tuple[float, ...]

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return len(self.centres)

    def to_dict(self) -> dict[str, object]:
        """Plain dict (for JSON summaries)."""
        return {"centres_cycles_per_voxel": list(self.centres), "sigma_voxels": list(self.sigma_voxels),
                "grid_shapes": [list(s) for s in self.grid_shapes],
                "stats_shapes": [list(s) for s in self.stats_shapes], "n_effective": list(self.n_effective)}


#: :meth:`FSCCurve.crossing_status` values are those of :mod:`locband.engine.units` (CROSSED, ...)


@dataclass(frozen=True)
class FSCCurve:
    """A Fourier shell correlation curve.

    Attributes
    ----------
    frequency : (n,) ndarray of float64
        Shell centres in cycles/voxel; shell 0 is the mean alone (FSC 1 by convention).
    fsc : (n,) ndarray of float64
        Correlation per shell.
    counts : (n,) ndarray of float64 or None
        Fourier coefficients of the full spectrum in each shell; 0 where a half has no power
        there (nothing measured). None where unknown.
    """

    frequency: npt.NDArray[np.float64]
    fsc: npt.NDArray[np.float64]
    counts: npt.NDArray[np.float64] | None = None

    def crossing(self, threshold: float) -> float:
        """Where the FSC first falls below ``threshold``, in cycles/voxel; never outside the measured shells.

        Shell 0 (the mean) says nothing about resolution and is skipped. Between the last shell
        at or above the threshold and the first one below, the crossing is interpolated
        linearly, so it lies within ``[frequency[1], frequency[-1]]``, with two exceptions
        that :meth:`crossing_status` names:

        * ``frequency[-1]`` (the last shell, Nyquist for an even box) where the FSC never
          falls below: a bound, the resolution is at least this (``ABOVE_TO_LAST_SHELL``);
        * ``0.0`` where the FSC is below the threshold already at shell 1: no shell reaches
          it and there is no resolution to report (``BELOW_AT_FIRST_SHELL``; in Å, ``inf``).

        Parameters
        ----------
        threshold : float
            FSC value, e.g. 0.143.

        Returns
        -------
        float
            Cycles/voxel.
        """
        below = np.nonzero(self.fsc[1:] < threshold)[0]
        if below.size == 0:
            return float(self.frequency[-1])
        i = int(below[0]) + 1
        if i == 1:
            return 0.0
        f0, f1 = self.frequency[i - 1], self.frequency[i]
        c0, c1 = self.fsc[i - 1], self.fsc[i]
        t = min(max((c0 - threshold) / (c0 - c1), 0.0), 1.0)  # c0 >= threshold > c1
        return float(f0 + t * (f1 - f0))

    def crossing_status(self, threshold: float) -> str:
        """What :meth:`crossing` returns: ``CROSSED``, ``ABOVE_TO_LAST_SHELL`` or ``BELOW_AT_FIRST_SHELL``."""
        below = np.nonzero(self.fsc[1:] < threshold)[0]
        if below.size == 0:
            return ABOVE_TO_LAST_SHELL
        return BELOW_AT_FIRST_SHELL if below[0] == 0 else CROSSED

    def to_dict(self) -> dict[str, list[float]]:
        """Plain dict (for JSON summaries)."""
        return {"frequency_cycles_per_voxel": [float(v) for v in self.frequency],
                "fsc": [float(v) for v in self.fsc]}


@dataclass(frozen=True)
class FilterResult:
    """Everything one local filtering produces.

    Attributes
    ----------
    half1, half2 : (nz, ny, nx) ndarray of float32
        Each half filtered on its own with weights estimated from both (usable as references).
    full : (nz, ny, nx) ndarray of float32
        The mean of the halves, weighted for the full map's SNR (twice a half's).
    local_frequency : (nz, ny, nx) ndarray of float32
        Local resolution as a frequency in cycles/voxel (where the local half-map FSC crosses
        ``params.criterion``).
    local_resolution_angstrom : (nz, ny, nx) ndarray of float32
        The same in Å (``pixel_size_angstrom / local_frequency``).
    pixel_size_angstrom : float
        Voxel size the result refers to.
    fsc_unmasked, fsc_masked : FSCCurve
        Global FSC of the input halves; ``fsc_masked`` is None without a mask.
    bands : BandLayout
        The bands used.
    params : FilterParams
        The settings used.
    band_snr : (n_bands, lz, ly, lx) ndarray of float32 or None
        Per-band local SNR of one half (``signal / noise``) on the coarse statistics grid,
        if asked for.
    timings : dict
        Seconds spent per stage.
    """

    half1: npt.NDArray[np.float32]
    half2: npt.NDArray[np.float32]
    full: npt.NDArray[np.float32]
    local_frequency: npt.NDArray[np.float32]
    local_resolution_angstrom: npt.NDArray[np.float32]
    pixel_size_angstrom: float
    fsc_unmasked: FSCCurve
    fsc_masked: FSCCurve | None
    bands: BandLayout
    params: FilterParams
    band_snr: npt.NDArray[np.float32] | None = None
    timings: dict[str, float] = field(default_factory=dict)
