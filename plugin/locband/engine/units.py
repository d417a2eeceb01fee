"""The one place where Ångström and cycles/voxel meet.

The engine works in cycles/voxel (0 at DC, 0.5 at Nyquist). Adapters and the result object
convert with these two helpers and nothing else.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine._device import array_module

__all__ = ["cycles_to_angstrom", "angstrom_to_cycles"]


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
