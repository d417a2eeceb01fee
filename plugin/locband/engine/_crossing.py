"""Local resolution from the bands' local statistics, as they arrive (:class:`_Crossing`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from locband.engine._device import Array

__all__ = ["_Crossing"]


class _Crossing:
    """Local resolution: where the local half-map FSC first falls below the criterion.

    Bands arrive in increasing order; between two band centres the crossing is interpolated
    linearly in the local FSC. Voxels that never fall below stay at the last centre (Nyquist).
    """

    def __init__(self, shape: tuple[int, ...], centres: tuple[float, ...], criterion: float, *,
                 xp: Any = np) -> None:
        self.centres = centres
        self.criterion = np.float32(criterion)
        self.xp = xp
        self.frequency = xp.full(shape, centres[-1], dtype=xp.float32)
        self.found = xp.zeros(shape, dtype=bool)
        self.prev: Array | None = None

    def update(self, b: int, sig: Array, noise: Array) -> None:
        """Take band ``b``'s local signal and noise power (on the coarse statistics grid)."""
        xp = self.xp
        den = sig + noise
        loc = xp.where(den > 0, sig / xp.where(den > 0, den, 1), np.float32(1))  # no noise at all: FSC 1
        crit = self.criterion
        if self.prev is None:
            cross = loc < crit
            self.frequency[cross] = 0.0
        else:
            cross = ~self.found & (loc < crit)
            t = xp.clip((self.prev - crit) / xp.maximum(self.prev - loc, np.float32(1e-12)), 0, 1)
            c0, c1 = self.centres[b - 1], self.centres[b]
            self.frequency[cross] = (c0 + t * (c1 - c0))[cross]
        self.found |= cross
        self.prev = loc
