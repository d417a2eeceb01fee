"""The interpretation map's vocabulary: its settings in, its results out (frozen dataclasses).

Built on the linear filter's (:mod:`locband.engine.params`): the bands and windows of
:class:`DenoiseParams` are a :class:`~locband.engine.params.FilterParams`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from locband.engine.params import BandLayout, FilterParams, FSCCurve
from locband.engine.units import angstrom_to_cycles, bfactor_to_voxels, molecular_volume_voxels

__all__ = ["DenoiseParams", "DenoiseResult", "SHARPEN_MODES"]

#: accepted values of DenoiseParams.sharpen
SHARPEN_MODES = ("local", "global", "off")


@dataclass(frozen=True)
class DenoiseParams:
    """Settings of the interpretation map (:mod:`locband.engine.denoise`), in voxels and cycles/voxel.

    Use :meth:`from_physical` to give the mass, B-factor and resolutions in kDa, Å² and Å.

    Attributes
    ----------
    filter : FilterParams
        Bands, windows and local statistics (shared with the linear filter).
    cycles : int
        Density-modification cycles: each applies the real-space priors to the current map and
        recombines the bands with the data.
    significance : bool
        Weight every voxel of every band by how certain it is to be signal (False: the linear
        Wiener weights of ``locband filter``; the priors then have no effect).
    significance_power : float
        The prior density ``rho`` predicts a band's local signal power as ``rho**power``.
    significance_floor : float
        Where the prior density is 0 the predicted signal power is this fraction of the
        window's mean (never exactly 0: the prior only reweights what the data support).
    positivity, solvent_flattening, connectivity : bool
        The real-space priors (:mod:`locband.engine.priors`).
    consistency : bool
        The average (only it sees both halves' voxels) is down-weighted where the halves
        differ beyond their noise (a feature in one half only).
    molecular_volume_voxels : float or None
        Expected molecular volume; sets the solvent boundary when given.
    envelope_sigma_voxels : float or None
        Smoothing of the map from which the solvent boundary is found (None: 20 Å at the voxel
        size given to the denoiser).
    sharpen : {"local", "global", "off"}
        Local sharpening from the local fall-off of the signal, one global B-factor, or none.
    bfactor_voxels : float
        ``sharpen="global"`` only: the B-factor in voxels² (RELION's sign: negative sharpens).
    sharpen_from : float or None
        Frequency (cycles/voxel) where local sharpening starts (None: 10 Å).
    max_gain : float
        Largest amplitude gain any sharpening may apply.
    """

    filter: FilterParams = field(default_factory=FilterParams)
    cycles: int = 1
    significance: bool = True
    significance_power: float = 2.0
    significance_floor: float = 0.05
    positivity: bool = True
    solvent_flattening: bool = True
    connectivity: bool = True
    consistency: bool = True
    molecular_volume_voxels: float | None = None
    envelope_sigma_voxels: float | None = None
    sharpen: str = "local"
    bfactor_voxels: float = 0.0
    sharpen_from: float | None = None
    max_gain: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.filter, FilterParams):
            raise TypeError(f"DenoiseParams.filter must be a FilterParams, got {type(self.filter).__name__}")
        if isinstance(self.cycles, bool) or not isinstance(self.cycles, int) or not 1 <= self.cycles <= 10:
            raise ValueError(f"DenoiseParams.cycles must be an integer in [1, 10], got {self.cycles!r}")
        if self.sharpen not in SHARPEN_MODES:
            raise ValueError(f"DenoiseParams.sharpen must be one of {SHARPEN_MODES}, got {self.sharpen!r}")
        checks: dict[str, tuple[object, Callable[[float], bool], str]] = {
            "significance_power": (self.significance_power, lambda v: 0.0 < v <= 8.0, "a number in (0, 8]"),
            "significance_floor": (self.significance_floor, lambda v: 0.0 < v <= 10.0, "a number in (0, 10]"),
            "bfactor_voxels": (self.bfactor_voxels, lambda v: abs(v) <= 1e5, "a number with |B| <= 1e5"),
            "max_gain": (self.max_gain, lambda v: 1.0 <= v <= 1e4, "a number in [1, 1e4]"),
        }
        optional: dict[str, tuple[object, Callable[[float], bool], str]] = {
            "molecular_volume_voxels": (self.molecular_volume_voxels, lambda v: v > 0, "a number > 0 or None"),
            "envelope_sigma_voxels": (self.envelope_sigma_voxels, lambda v: 0.0 < v <= 1000,
                                      "a number in (0, 1000] or None"),
            "sharpen_from": (self.sharpen_from, lambda v: 0.0 <= v <= 0.5, "a frequency in [0, 0.5] or None"),
        }
        checks.update({k: v for k, v in optional.items() if v[0] is not None})
        for name, (value, ok, expected) in checks.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not numeric or not math.isfinite(float(value)) or not ok(float(value)):  # type: ignore[arg-type]
                raise ValueError(f"DenoiseParams.{name} must be {expected}, got {value!r}")

    @classmethod
    def from_physical(cls, *, pixel_size_angstrom: float, molecular_mass_kda: float | None = None,
                      bfactor_angstrom2: float | None = None, sharpen: bool = True,
                      sharpen_from_angstrom: float = 10.0, envelope_resolution_angstrom: float = 20.0,
                      **settings: object) -> DenoiseParams:
        """Settings from physical units (the adapter boundary).

        Parameters
        ----------
        pixel_size_angstrom : float
            Voxel size in Å.
        molecular_mass_kda : float, optional
            Mass of the molecule in kDa: the expected volume (1.23 Å³/Da) sets the solvent boundary.
        bfactor_angstrom2 : float, optional
            One global B-factor in Å² instead of local sharpening (negative sharpens, as in
            RELION's postprocessing).
        sharpen : bool
            False: no sharpening at all (``bfactor_angstrom2`` must then be None).
        sharpen_from_angstrom : float
            Local sharpening restores the fall-off beyond this resolution.
        envelope_resolution_angstrom : float
            The solvent boundary follows the map low-passed to about this resolution
            (Gaussian of sigma ``0.187 * resolution``: half amplitude at the resolution).
        **settings
            Any other :class:`DenoiseParams` field.

        Raises
        ------
        ValueError
            Non-positive voxel size, mass or resolutions; a B-factor together with ``sharpen=False``.
        """
        px = float(pixel_size_angstrom)
        if not (math.isfinite(px) and px > 0):
            raise ValueError(f"pixel_size_angstrom must be a finite number > 0, got {pixel_size_angstrom!r}")
        for name, value in (("sharpen_from_angstrom", sharpen_from_angstrom),
                            ("envelope_resolution_angstrom", envelope_resolution_angstrom)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a number > 0 Å, got {value!r}")
        if molecular_mass_kda is not None and not (math.isfinite(molecular_mass_kda) and molecular_mass_kda > 0):
            raise ValueError(f"molecular_mass_kda must be a number > 0, got {molecular_mass_kda!r}")
        if bfactor_angstrom2 is not None and not sharpen:
            raise ValueError("a global B-factor was given together with no sharpening: choose one")
        mode = "off" if not sharpen else ("global" if bfactor_angstrom2 is not None else "local")
        volume = None if molecular_mass_kda is None else molecular_volume_voxels(molecular_mass_kda,
                                                                                 pixel_size_angstrom=px)
        return cls(sharpen=mode, molecular_volume_voxels=volume,
                   bfactor_voxels=0.0 if bfactor_angstrom2 is None else bfactor_to_voxels(bfactor_angstrom2,
                                                                                         pixel_size_angstrom=px),
                   sharpen_from=float(angstrom_to_cycles(sharpen_from_angstrom, pixel_size_angstrom=px)),
                   envelope_sigma_voxels=0.187 * envelope_resolution_angstrom / px, **settings)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """Plain dict of the settings (for JSON summaries)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "filter"}
        out["filter"] = self.filter.to_dict()
        return out


@dataclass(frozen=True)
class DenoiseResult:
    """Everything one interpretation map produces (see :func:`locband.engine.denoise.denoise`).

    These maps are non-linear: for interpretation only, never to be averaged again or used as
    refinement references.

    Attributes
    ----------
    full : (nz, ny, nx) ndarray of float32
        The interpretation map, from both halves.
    half1, half2 : (nz, ny, nx) ndarray of float32
        Each half processed on its own: it uses the other half's local statistics (signal and
        noise power) but never its voxel values, so it can be compared with the raw other half.
    local_frequency, local_resolution_angstrom : (nz, ny, nx) ndarray of float32
        Local resolution (as from the linear filter).
    envelope_volume_voxels : float or None
        Voxels inside the full map's molecular envelope (envelope > 0.5); None without
        solvent flattening.
    pixel_size_angstrom : float
        Voxel size.
    fsc_unmasked, fsc_masked : FSCCurve
        FSC of the raw halves (``fsc_masked`` None without a mask).
    cross_unmasked, cross_masked : tuple of two FSCCurve
        Cross-validation: processed half 1 against raw half 2, and processed half 2 against
        raw half 1 (masked: None without a mask).
    cross_linear_unmasked, cross_linear_masked : tuple of two FSCCurve
        The same for the linear filter's halves (the first step of the same run), for
        comparison: what the non-linear steps added.
    bands : BandLayout
        The bands used.
    params : DenoiseParams
        The settings used (with ``envelope_sigma_voxels`` and ``sharpen_from`` resolved).
    timings : dict
        Seconds per stage.
    """

    full: npt.NDArray[np.float32]
    half1: npt.NDArray[np.float32]
    half2: npt.NDArray[np.float32]
    local_frequency: npt.NDArray[np.float32]
    local_resolution_angstrom: npt.NDArray[np.float32]
    envelope_volume_voxels: float | None
    pixel_size_angstrom: float
    fsc_unmasked: FSCCurve
    fsc_masked: FSCCurve | None
    cross_unmasked: tuple[FSCCurve, FSCCurve]
    cross_masked: tuple[FSCCurve, FSCCurve] | None
    cross_linear_unmasked: tuple[FSCCurve, FSCCurve]
    cross_linear_masked: tuple[FSCCurve, FSCCurve] | None
    bands: BandLayout
    params: DenoiseParams
    timings: dict[str, float] = field(default_factory=dict)
