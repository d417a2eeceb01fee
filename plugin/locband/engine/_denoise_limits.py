"""How far each weighted band of an interpretation map may spread in frequency (a guard of step 3).

A weighted band is kept near its own frequencies: nothing below the previous band's centre (a
weight that follows the values would rectify them into low frequencies), and above its own
centre only as far as the next band is significant (:func:`upper_spread`).

**Cost.** The limits touch only the frequencies a band can keep (:meth:`Limits.kept`: about a
third of a band's grid), slab by slab.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from locband.engine import _device, _slabs
from locband.engine._denoise_plan import Plan, Vol
from locband.engine._denoise_statistics import DenoiseStatistics
from locband.engine._grid import crop_rows, frequency_squared_rows
from locband.engine.params import BandLayout

__all__ = ["Limits", "upper_spread"]

_FULL_SPREAD = 0.5  # a band may spread fully into the next one when that holds this signal fraction


class Limits:
    """How much of each weighted band is kept at each frequency.

    Band ``b`` keeps only frequencies above the previous centre; between its own centre and
    the next one its content is scaled by ``upper[b]``; beyond the next centre it is cut (see
    :func:`~locband.engine._denoise_weighting.reweigh`).
    """

    def __init__(self, shape: tuple[int, ...], layout: BandLayout, upper: list[float]) -> None:
        self.shape, self.layout, self.upper = shape, layout, upper
        self._steps = tuple(1.0 / n for n in shape)

    def kept(self, b: int) -> tuple[int, ...]:
        """The grid of band ``b``'s spectrum that can be kept: every frequency below the next centre.

        A Fourier crop of the band's grid: per axis the frequencies ``|k| <= c n + 1`` (``c`` the
        next centre, ``n`` the box's edge; one more than needed, so that the factor alone decides
        at the boundary). Beyond it :meth:`rows` is 0.
        """
        c, grid = self.layout.centres, self.layout.grid_shapes[b]
        if b + 1 >= len(c):
            return grid
        out = []
        for axis, (n, g) in enumerate(zip(self.shape, grid, strict=True)):
            p = int(math.floor(c[b + 1] * n)) + 2  # kept non-negative frequencies 0..p-1
            m = 2 * p - 2 if axis == len(grid) - 1 else 2 * p - 1  # x: rfft columns 0..p-1
            out.append(min(g, m))
        return tuple(out)

    def rows(self, b: int, grid: tuple[int, ...], z0: int, z1: int) -> Vol:
        """The factor (0, ``upper[b]`` or 1) on planes ``z0:z1`` of band ``b``'s spectrum on ``grid``."""
        c = self.layout.centres
        s2 = frequency_squared_rows(grid, self._steps, z0, z1)
        out = np.ones(s2.shape, np.float32)
        if b > 0:
            out[s2 <= np.float32(c[b - 1]) ** 2] = 0
        if b + 1 < len(c):
            hi = s2 >= np.float32(c[b + 1]) ** 2
            if self.upper[b] < 1.0:
                mid = s2 > np.float32(c[b]) ** 2
                mid &= ~hi
                out[mid] = np.float32(self.upper[b])
            out[hi] = 0
        return out

    def accumulate(self, b: int, spec: Any, total: Any, *, workers: int, xp: Any = np) -> None:
        """``total[crop] += limited band spectrum``: band ``b``'s weighted spectrum (its grid) added to a full one.

        A weighted band spreads beyond the band's frequencies. Spreading below the band would
        rectify: the weight is high where the band's values are, so their product has a mean
        and low-frequency parts that no data support; spreading above the band could put
        content where the data have none (extrapolation). Both are cut here, slab by slab, over
        the frequencies that can be kept only (:meth:`kept`: about a third of a band's grid).
        """
        grid, kept = self.layout.grid_shapes[b], self.kept(b)
        mxh = kept[2] // 2 + 1
        y_box, y_band = crop_rows(self.shape[1], kept[1], 0, kept[1]), crop_rows(grid[1], kept[1], 0, kept[1])

        def work(z0: int, z1: int) -> None:
            f = _device.to_device(self.rows(b, kept, z0, z1), xp)
            for (zt, zk), (zb, _) in zip(crop_rows(self.shape[0], kept[0], z0, z1), crop_rows(grid[0], kept[0], z0, z1),
                                         strict=True):
                fz = f[zk.start - z0:zk.stop - z0]
                for (yt, yk), (yb, _) in zip(y_box, y_band, strict=True):
                    total[zt, yt, :mxh] += spec[zb, yb, :mxh] * fz[:, yk]

        _slabs.run(work, kept[0], rows=_slabs.slab_rows(kept[0], kept[1] * mxh, xp), workers=workers)


def upper_spread(plan: Plan, stats: DenoiseStatistics) -> list[float]:
    """Per band, how far its spread may reach into the next band: that band's significance.

    The next band's signal fraction ``sum S / sum (S + N/2)`` (within the mask, if any)
    relative to 0.5, clipped to [0, 1]: a band whose neighbour above has no signal may
    not spread into it.
    """
    lay = plan.layout
    m = plan.filter._small_mask(plan.filter.stats_shape)
    out = []
    for b in range(lay.n_bands):
        if b + 1 >= lay.n_bands:
            out.append(1.0)
            continue
        sig, noise = stats.signal_coarse[b + 1], stats.noise_coarse[b + 1] * np.float32(0.5)
        wts = m if m is not None else np.ones_like(sig)
        frac = float((sig * wts).sum()) / max(float(((sig + noise) * wts).sum()), 1e-30)
        out.append(float(np.clip(frac / _FULL_SPREAD, 0.0, 1.0)))
    return out
