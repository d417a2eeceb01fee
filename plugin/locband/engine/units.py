"""The one place where Ångström and cycles/voxel meet.

The engine works in cycles/voxel (0 at DC, 0.5 at Nyquist). Adapters and the result object
convert with these two helpers and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from locband.engine._device import array_module

if TYPE_CHECKING:  # params imports this module: the curve type is for the annotations only
    from locband.engine.params import FSCCurve

__all__ = ["cycles_to_angstrom", "angstrom_to_cycles", "fsc_resolution_angstrom", "describe_fsc_resolution",
           "molecular_volume_voxels", "bfactor_to_voxels", "ANGSTROM3_PER_DALTON", "CROSSED", "BELOW_AT_FIRST_SHELL",
           "ABOVE_TO_LAST_SHELL"]

#: what kind of number an FSC resolution is (:meth:`~locband.engine.params.FSCCurve.crossing_status`)
CROSSED = "crossed"
BELOW_AT_FIRST_SHELL = "below_at_first_shell"
ABOVE_TO_LAST_SHELL = "above_to_last_shell"

#: Volume of protein per dalton of mass: 1.23 Å³/Da, from a partial specific volume of
#: 0.74 cm³/g (a density of 1.35 g/cm³): 0.74e24 Å³/g / 6.022e23 Da/g (PDBx/mmCIF dictionary,
#: ``_exptl_crystal.density_percent_sol``; Matthews, J. Mol. Biol. 33:491, 1968). The often
#: quoted 1.21 Å³/Da corresponds to 1.37 g/cm³.
ANGSTROM3_PER_DALTON = 1.23


def cycles_to_angstrom(frequency: npt.ArrayLike, *, pixel_size_angstrom: float) -> npt.NDArray[np.float64]:
    """Resolution in Å of a spatial frequency in cycles/voxel (``inf`` at frequency 0).

    Notes
    -----
    ``resolution_angstrom = pixel_size_angstrom / frequency``; Nyquist (0.5) is two voxels.
    """
    xp = array_module(frequency)  # NumPy, or CuPy for the engine's arrays on a GPU
    f = xp.asarray(frequency, dtype=xp.float64)
    with np.errstate(divide="ignore"):
        return xp.where(f > 0, pixel_size_angstrom / xp.where(f > 0, f, 1.0), np.inf)  # type: ignore[no-any-return]


def angstrom_to_cycles(resolution_angstrom: npt.ArrayLike, *, pixel_size_angstrom: float) -> npt.NDArray[np.float64]:
    """Spatial frequency in cycles/voxel of a resolution in Å (0 for ``inf``)."""
    r = np.asarray(resolution_angstrom, dtype=np.float64)
    return np.where(np.isfinite(r), pixel_size_angstrom / np.where(np.isfinite(r), r, 1.0), 0.0)


def fsc_resolution_angstrom(curve: FSCCurve, threshold: float, *,
                            pixel_size_angstrom: float) -> tuple[float | None, str]:
    """Resolution in Å where an FSC crosses ``threshold``, with what kind of number it is.

    Returns
    -------
    resolution_angstrom : float or None
        Å at the crossing; Å of the last shell where the FSC never falls below (a bound: the
        resolution is at least this); None where the FSC is below the threshold from the first
        shell on (no resolution).
    status : str
        :meth:`FSCCurve.crossing_status`.
    """
    status = curve.crossing_status(threshold)
    if status == BELOW_AT_FIRST_SHELL:
        return None, status
    return float(cycles_to_angstrom(curve.crossing(threshold), pixel_size_angstrom=pixel_size_angstrom)), status


def describe_fsc_resolution(resolution_angstrom: float | None, status: str, *, threshold: float) -> str:
    """A phrase to follow "FSC=0.143" for a resolution from :func:`fsc_resolution_angstrom`, honest about bounds.

    ``"at 4.20 Å"``; ``"at <= 3.00 Å (the last shell: never below 0.143)"``; ``"not reached
    (below 0.143 from the first shell)"``.
    """
    if resolution_angstrom is None or not np.isfinite(resolution_angstrom) or status == BELOW_AT_FIRST_SHELL:
        return f"not reached (below {threshold:g} from the first shell)"
    if status == ABOVE_TO_LAST_SHELL:
        return f"at <= {resolution_angstrom:.2f} Å (the last shell: never below {threshold:g})"
    return f"at {resolution_angstrom:.2f} Å"


def molecular_volume_voxels(mass_kda: float, *, pixel_size_angstrom: float,
                            angstrom3_per_dalton: float = ANGSTROM3_PER_DALTON) -> float:
    """Volume in voxels of a molecule of ``mass_kda`` kilodaltons.

    Notes
    -----
    ``mass_kda * 1000 * angstrom3_per_dalton / pixel_size_angstrom**3``.
    """
    return float(mass_kda) * 1000.0 * angstrom3_per_dalton / float(pixel_size_angstrom) ** 3


def bfactor_to_voxels(bfactor_angstrom2: float, *, pixel_size_angstrom: float) -> float:
    """A B-factor in Å² expressed in voxels² (so that ``B s^2`` keeps its value with ``s`` in cycles/voxel)."""
    return float(bfactor_angstrom2) / float(pixel_size_angstrom) ** 2
