"""The sums of a filtering call's weighted bands: the two halves and their average (:class:`_Outputs`).

Used by the linear filter (:class:`locband.engine.local.LocalFilter`) and by the
interpretation map (:mod:`locband.engine.denoise`), which adds bands given as real maps
(:meth:`_Outputs.add`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from locband.engine import _fft, _slabs
from locband.engine._device import Array
from locband.engine._grid import crop_blocks, rfft_shape
from locband.engine._heap import trim_heap
from locband.engine._interp import resample_rows

__all__ = ["_Outputs"]


class _Outputs:
    """Sums of the weighted bands of the two halves and the average, for one call.

    Bands on cropped grids are summed as spectra: each band's three weighted spectra absorb the
    sums of the smaller bands before them (grids grow with the band), so no sum is kept at a
    size larger than the band in hand. When the first full-size band arrives (bands come in
    increasing order) the sums become real volumes, each transformed in place in a full-size
    spectrum buffer, to which the full-size bands are added directly, saving their forward FFTs.
    Full-size band maps are made in at most two full-size buffers per call (:meth:`map_buffers`).
    """

    def __init__(self, shape: tuple[int, ...], grids: tuple[tuple[int, ...], ...], *, workers: int,
                 backend: str, xp: Any = np) -> None:
        self.shape = shape
        self.workers, self.backend, self.xp = workers, backend, xp
        self.spectra: list[Array] = []  # the sums of the cropped bands so far, on spectra_grid
        self.spectra_grid: tuple[int, ...] | None = None
        self.real: list[Array] = []
        self._real_buffers: list[Array | None] = []  # the spectrum buffer each real sum lives in
        self.early: dict[int, tuple[Array, tuple[Array, Array]]] | None = None  # see LocalFilter._band
        self.spare: list[Array] = []  # full-size complex buffers no longer needed (see volume)
        self._work: list[Array | None] = [None, None]

    def map_buffers(self, grid: tuple[int, ...], *, start: bool = True) -> list[Array]:
        """Two complex64 buffers of ``grid``'s rfft shape to make a band's maps in.

        Full-size ones are the call's two reusable buffers (with ``start``, the sums become real
        volumes first: full-size bands are added to those); smaller ones are new, and become the
        band's weighted spectra.
        """
        xp = self.xp
        if grid != self.shape:
            return [xp.empty(rfft_shape(grid), dtype=xp.complex64) for _ in range(2)]
        if start:
            self._to_real()
        return [self._full_buffer(0), self._full_buffer(1)]

    def _full_buffer(self, i: int) -> Array:
        buf = self._work[i]
        if buf is None:
            buf = self._work[i] = self.xp.empty(rfft_shape(self.shape), dtype=self.xp.complex64)
        return buf

    def release_map_buffers(self) -> None:
        """Give the full-size buffers back (they are made again if asked for)."""
        self._work = [None, None]

    def _to_real(self) -> None:
        if self.real:
            return
        xp = self.xp
        if not self.spectra:
            self.real = [xp.zeros(self.shape, dtype=xp.float32) for _ in range(3)]
            self._real_buffers = [None, None, None]
            return
        assert self.spectra_grid is not None
        trim_heap()  # the cropped bands' temporaries: give their room back before the full-size phase
        while self.spectra:
            part = self.spectra.pop(0)
            spec = xp.zeros(rfft_shape(self.shape), dtype=xp.complex64)
            for in_full, in_crop in crop_blocks(self.shape, self.spectra_grid):
                spec[in_full] = part[in_crop]
            del part
            self.real.append(_fft.irfftn(spec, self.shape, overwrite_input=True, out=_fft.real_view(spec, self.shape),
                                         workers=self.workers, backend=self.backend))
            self._real_buffers.append(spec)

    def _absorb(self, grid: tuple[int, ...], spectra: list[Array]) -> None:
        """Add a band's spectra (on ``grid``) to the running sums, keeping the larger grid's arrays."""
        if self.spectra_grid is not None and not all(g >= s for g, s in zip(grid, self.spectra_grid, strict=True)):
            if not all(s >= g for g, s in zip(grid, self.spectra_grid, strict=True)):
                raise ValueError(f"band grids must nest: {grid} after {self.spectra_grid}")
            for old, spec in zip(self.spectra, spectra, strict=True):  # a smaller band after a larger one
                for in_full, in_crop in crop_blocks(self.spectra_grid, grid):
                    old[in_full] += spec[in_crop]
            return
        if self.spectra_grid is not None:  # bands in increasing order: the new spectra absorb the sums
            blocks = crop_blocks(grid, self.spectra_grid)
            for spec, old in zip(spectra, self.spectra, strict=True):
                for in_full, in_crop in blocks:
                    spec[in_full] += old[in_crop]
        self.spectra, self.spectra_grid = spectra, grid

    def _weights(self, w_half: Array, grid: tuple[int, ...], z0: int, z1: int) -> tuple[Array, Array]:
        """Planes ``z0:z1`` of the half weight ``w`` and of the average's ``w / (1 + w)`` on ``grid``."""
        w = resample_rows(w_half, grid, z0, z1)
        w_full = w + 1
        self.xp.divide(w, w_full, out=w_full)
        return w, w_full

    def _run_slabs(self, fn: Callable[[int, int], None], grid: tuple[int, ...]) -> None:
        _slabs.run(fn, grid[0], rows=_slabs.slab_rows(grid[0], grid[1] * grid[2], self.xp), workers=self.workers)

    def add_weighted(self, grid: tuple[int, ...], maps: Sequence[Array], w_half: Array) -> None:
        """Weight one band's maps and add them.

        The maps are made on ``grid`` in ``maps`` by
        :meth:`~locband.engine._local_stats.LocalStatistics._band_stats`.

        ``w_half`` is the half weight ``S/(S+N)`` on the band's statistics grid; the average
        gets ``S/(S+N/2) = 2w/(1+w)`` (one interpolation serves both; the 1/2 of the average
        cancels the 2). Interpolation and weighting run slab by slab: no volume-sized weights.
        """
        xp = self.xp
        b1, b2 = (_fft.real_view(m, grid) for m in maps)
        if grid == self.shape:
            self._to_real()
            o1, o2, of = self.real

            def add(z0: int, z1: int) -> None:
                w, w_full = self._weights(w_half, grid, z0, z1)
                x1, x2 = b1[z0:z1], b2[z0:z1]
                t = x1 + x2
                t *= w_full
                of[z0:z1] += t
                xp.multiply(x1, w, out=t)
                o1[z0:z1] += t
                xp.multiply(x2, w, out=t)
                o2[z0:z1] += t

            self._run_slabs(add, grid)
            return

        def produce(z0: int, z1: int) -> tuple[Array, Array, Array]:
            w, w_full = self._weights(w_half, grid, z0, z1)
            x1, x2 = b1[z0:z1], b2[z0:z1]
            full = x1 + x2
            full *= w_full
            return x1 * w, x2 * w, full

        spectra = [maps[0], maps[1], xp.empty(rfft_shape(grid), dtype=xp.complex64)]
        _fft.rfftn_slabs(produce, grid, spectra, workers=self.workers, backend=self.backend)
        self._absorb(grid, spectra)

    def add_one_at_a_time(self, grid: tuple[int, ...], make_map: Callable[[Array, Array], Array],
                          spectra: Sequence[Array], w_half: Array) -> None:
        """Add a full-size band whose maps are made one half at a time in one buffer (lean schedule).

        ``make_map(spectrum, buffer)`` returns one half's band map made in ``buffer``. The
        average gets ``w/(1+w) * b1`` and ``w/(1+w) * b2`` one after the other.
        """
        xp = self.xp
        self._to_real()
        of = self.real[2]
        buf = self._full_buffer(0)
        for spec, target in zip(spectra, self.real[:2], strict=True):
            bmap = make_map(spec, buf)

            def add(z0: int, z1: int, bmap: Array = bmap, target: Array = target) -> None:
                w, w_full = self._weights(w_half, grid, z0, z1)
                x = bmap[z0:z1]
                t = x * w
                target[z0:z1] += t
                xp.multiply(x, w_full, out=t)
                of[z0:z1] += t

            self._run_slabs(add, grid)

    def add(self, b: int, o1: Array, o2: Array, of: Array) -> None:
        """Add band ``b``'s weighted half 1, half 2 and average (real, on the band's grid)."""
        grid = tuple(o1.shape)
        if grid == self.shape:
            self._to_real()
            for target, part in zip(self.real, (o1, o2, of), strict=True):
                target += part
        else:
            self._absorb(grid, [_fft.rfftn(part, workers=self.workers, backend=self.backend) for part in (o1, o2, of)])

    def volume(self) -> Array:
        """A C-contiguous float32 volume of the box, in a spare full-size buffer if there is one.

        A spare rfft buffer holds ``nz * ny * 2 * (nx // 2 + 1)`` floats, at least a volume:
        results made there need no new memory (at 512^3 five volumes that would otherwise be
        fresh pages, about a second of system time each on a busy machine). :meth:`finish` copies
        each sum into a spare buffer and then spares the sum's own buffer: the spectra of the last
        band hold the halves, the first sum's buffer the average, the others the local resolution.
        """
        xp = self.xp
        if not self.spare:
            return xp.empty(self.shape, dtype=xp.float32)
        n = int(np.prod(self.shape))
        return self.spare.pop().view(xp.float32).reshape(-1)[:n].reshape(self.shape)

    def finish(self) -> tuple[Array, ...]:
        """The three real output volumes (C-contiguous)."""
        self._to_real()
        self.spare.extend(w for w in self._work if w is not None)
        self._work = [None, None]
        out = []
        while self.real:  # one at a time: a padded volume is copied out, then its buffer is spare
            padded, buf = self.real.pop(0), self._real_buffers.pop(0)
            target = self.volume()
            target[...] = padded
            out.append(target)
            del padded
            if buf is not None:
                self.spare.insert(0, buf)
        return tuple(out)
