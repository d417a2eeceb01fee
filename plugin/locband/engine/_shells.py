"""Per-shell sums of products of rfft spectra, several at once, over slabs of planes.

:func:`locband.engine.fsc.fsc_from_spectra` makes one FSC curve per pass over two spectra: the
shell of every coefficient, then three weighted histograms. An interpretation map needs ten
curves, most of them against the same raw spectra; :class:`ShellSums` makes the shell index of
a slab once for every product asked for, skips the multiplicity array (``2 * sum - sum over
the edge columns``: every rfft coefficient stands for two but those of x = 0 and, for even
boxes, Nyquist), and runs the slabs on the caller's threads. Per-slab sums are added in slab
order, so the result does not depend on the thread count. :func:`fsc_curve` turns three rows of
sums into the curve :func:`~locband.engine.fsc.fsc_from_spectra` returns (the same numbers, up to
the order of the float64 sums).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine import _slabs
from locband.engine._device import to_host
from locband.engine._grid import frequency_squared_rows
from locband.engine.fsc import _shell_counts
from locband.engine.params import FSCCurve

__all__ = ["ShellSums", "fsc_curve"]

#: ``produce(z0, z1, s2)``: the products to sum over planes ``z0:z1`` of the spectra, given the
#: squared frequencies ``s2`` of those planes (float32 arrays of the slab's rfft shape)
Produce = Callable[[int, int, Any], Sequence[Any]]


class ShellSums:
    """Sums over the FSC shells of a box's rfft spectra (shells as :func:`~locband.engine.fsc.shell_index`).

    Parameters
    ----------
    shape : tuple of int
        The real box ``(nz, ny, nx)``.
    workers : int
        Threads over slabs of planes.
    xp : module
        Array namespace of the spectra (NumPy; CuPy on a GPU).
    """

    def __init__(self, shape: tuple[int, ...], *, workers: int = 1, xp: Any = np) -> None:
        self.shape, self.workers, self.xp = tuple(int(n) for n in shape), workers, xp
        self.n = max(self.shape)
        self.n_shells = self.n // 2 + 1
        self._steps = tuple(1.0 / m for m in self.shape)
        nxh = self.shape[2] // 2 + 1
        # rfft columns that stand for one coefficient of the full spectrum (the others for two)
        self._edges = [0, nxh - 1] if self.shape[2] % 2 == 0 and nxh > 1 else [0]
        self._keep = False
        self._index: Any = None  # the shell of every coefficient (uint16), between keep() and release()
        self._slab_index: dict[int, Any] = {}

    def keep(self) -> None:
        """Keep the shell index made by the next :meth:`sums` for the later ones (2 bytes per coefficient)."""
        self._keep = self.n_shells < 2 ** 16

    def release(self) -> None:
        """Drop the kept shell index."""
        self._keep, self._index, self._slab_index = False, None, {}

    def sums(self, produce: Produce, count: int) -> npt.NDArray[np.float64]:
        """``(count, n_shells + 1)`` float64 sums, with multiplicity, of the ``count`` products of ``produce``.

        Column ``n_shells`` holds the coefficients beyond Nyquist (the cube's corners); an FSC
        ignores it, a total over the whole spectrum includes it.
        """
        xp, nz = self.xp, self.shape[0]
        rows = _slabs.slab_rows(nz, self.shape[1] * (self.shape[2] // 2 + 1), xp)
        slabs = _slabs.row_slabs(nz, rows)
        parts: list[Any] = [None] * len(slabs)
        length = self.n_shells + 1

        def work(z0: int, z1: int) -> None:
            s2 = frequency_squared_rows(self.shape, self._steps, z0, z1, xp)
            if self._index is not None:
                idx = self._index[z0:z1].astype(xp.intp)
            else:
                idx = xp.minimum(xp.rint(xp.sqrt(s2) * self.n).astype(xp.intp), self.n_shells)
                if self._keep:
                    self._slab_index[z0] = idx.astype(xp.uint16)
            flat, edge = idx.ravel(), idx[..., self._edges].ravel()
            out = xp.empty((count, length), dtype=xp.float64)
            for k, v in enumerate(produce(z0, z1, s2)):
                out[k] = xp.bincount(flat, weights=v.ravel(), minlength=length)
                out[k] *= 2.0
                out[k] -= xp.bincount(edge, weights=v[..., self._edges].ravel(), minlength=length)
            parts[z0 // rows] = out

        _slabs.run(work, nz, rows=rows, workers=self.workers)
        if self._keep and self._index is None:
            self._index = xp.concatenate([self._slab_index[z0] for z0, _ in slabs])
            self._slab_index = {}
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return to_host(total)


def fsc_curve(num: npt.NDArray[np.float64], p1: npt.NDArray[np.float64], p2: npt.NDArray[np.float64],
              shape: tuple[int, ...]) -> FSCCurve:
    """The FSC of two spectra from their per-shell sums (rows of :meth:`ShellSums.sums`).

    ``num`` the sums of ``Re(F1 conj F2)``, ``p1`` and ``p2`` of ``|F1|^2`` and ``|F2|^2``; the
    curve is built as :func:`~locband.engine.fsc.fsc_from_spectra` builds it.
    """
    n = max(shape)
    n_shells = n // 2 + 1
    num, p1, p2 = num[:n_shells], p1[:n_shells], p2[:n_shells]
    den = np.sqrt(p1 * p2)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    curve[0] = 1.0
    freq = np.arange(n_shells, dtype=np.float64) / n
    counts = np.where(den > 0, _shell_counts(tuple(shape)), 0.0)
    return FSCCurve(frequency=freq, fsc=np.clip(curve, -1.0, 1.0), counts=counts)
