"""Half-map consistency of an interpretation map (step 5 of :mod:`locband.engine.denoise`, the average only).

Where the linear halves differ beyond the noise the statistics predict (a feature in one half
only), the average is pulled to its solvent level. Only the average can do this: the halves
never see each other's voxels.

**Cost.** The halves' squared difference is smoothed in one full-size spectrum buffer of the
call (transformed in place); the test and the pull run over slabs of planes, with no full-size
temporaries.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from locband.engine import _fft, _slabs
from locband.engine._denoise_plan import Plan, Vol, wiener
from locband.engine._denoise_statistics import DenoiseStatistics
from locband.engine._grid import frequency_squared_rows
from locband.engine._interp import resample_rows
from locband.engine.priors import solvent_level

__all__ = ["agree"]

_CONSISTENCY_Z2 = 10.0  # the average is trusted where the halves' local chi-square stays below this
_CONSISTENCY_MIN_SIGMA = 1.5  # voxels: the consistency test's smallest smoothing


def agree(plan: Plan, vol: Vol, base: list[Vol], envelope: Vol | None, stats: DenoiseStatistics,
           buf: npt.NDArray[np.complex64]) -> Vol:
    """The average pulled to its solvent level where the halves disagree (in place).

    The linear filter's halves differ by filtered noise only, with a local variance the
    statistics predict, ``V = sum_b q_b^2 2 N_b``. Their squared difference, smoothed over
    the resolution, relative to ``V`` (normalised by its median inside the particle, which
    absorbs the overlap of neighbouring bands) is a local chi-square ``z2`` near 1; a
    feature in one half only makes it large. The average, relative to its solvent level, is
    multiplied by ``min(1, t / z2)`` with ``t = _CONSISTENCY_Z2``: a smooth factor, 1 wherever
    the halves agree (and where no signal is expected). Only the average can do this: the
    halves never see each other's voxels. ``buf`` (a full-size spectrum buffer) holds the
    smoothed squared difference and then the ratio.
    """
    coarse = plan.filter.stats_shape
    expected = np.zeros(coarse, np.float32)
    for sig, noise in zip(stats.signal_coarse, stats.noise_coarse, strict=True):
        expected += wiener(sig, noise) ** 2 * noise * np.float32(2.0)
    if not float(expected.max()) > 0:
        return vol
    # smoothed over half the best local resolution: a feature as small as the map resolves
    # is not diluted (the global resolution of an unmasked map is far coarser)
    best = float(np.percentile(stats.local_frequency, 99))
    ratio = _smoothed_square_difference(plan, base[0], base[1], max(_CONSISTENCY_MIN_SIGMA, 0.5 / max(best, 1e-6)),
                                        buf)
    ref, threshold = _consistency_reference(plan, ratio, expected)
    if not ref > 0:
        return vol
    level = np.float32(solvent_level(vol, envelope))
    scale = np.float32(1.0 / (_CONSISTENCY_Z2 * ref))

    def work(z0: int, z1: int) -> None:
        r = ratio[z0:z1]
        r *= scale
        np.maximum(r, np.float32(1.0), out=r)
        np.divide(np.float32(1.0), r, out=r)
        r[resample_rows(expected, plan.shape, z0, z1) <= threshold] = 1.0  # no signal expected: nothing to judge
        part = vol[z0:z1]
        part -= level
        part *= r
        part += level

    plan.run_slabs(work)
    return vol


def _smoothed_square_difference(plan: Plan, l1: Vol, l2: Vol, sigma: float, buf: npt.NDArray[np.complex64]) -> Vol:
    """``(l1 - l2)^2`` after a periodic Gaussian smoothing of ``sigma`` voxels, made in place in ``buf``.

    As :func:`~locband.engine.priors.gaussian_smooth`, over slabs and without new volumes.
    """
    shape, steps = plan.shape, tuple(1.0 / n for n in plan.shape)

    def produce(z0: int, z1: int) -> list[Vol]:
        diff = l1[z0:z1] - l2[z0:z1]
        diff *= diff
        return [diff]

    _fft.rfftn_slabs(produce, shape, [buf], workers=plan.workers, backend=plan.backend)
    k = np.float32(-2.0 * np.pi ** 2 * sigma ** 2)

    def smooth(z0: int, z1: int) -> None:
        buf[z0:z1] *= np.exp(k * frequency_squared_rows(shape, steps, z0, z1))

    _slabs.run(smooth, shape[0], rows=_slabs.slab_rows(shape[0], shape[1] * buf.shape[2], np), workers=plan.workers)
    return _fft.irfftn(buf, shape, overwrite_input=True, out=_fft.real_view(buf, shape), workers=plan.workers,
                       backend=plan.backend)


def _consistency_reference(plan: Plan, local: Vol, expected: Vol) -> tuple[float, np.float32]:
    """``local / V`` in place (``V`` the expected variance on the full grid); its median where signal is expected.

    Returns the median and the threshold on ``V`` above which signal is expected (5 % of its
    largest value).
    """
    vmax = [np.float32(0)] * len(_slabs.row_slabs(plan.shape[0], plan.rows()))
    plan.run_slabs(lambda z0, z1: vmax.__setitem__(z0 // plan.rows(),
                                                   resample_rows(expected, plan.shape, z0, z1).max()))
    threshold = np.float32(0.05) * max(vmax)
    inside: list[Vol] = [np.zeros(0, np.float32)] * len(vmax)

    def work(z0: int, z1: int) -> None:
        v = resample_rows(expected, plan.shape, z0, z1)
        r = local[z0:z1]
        np.divide(r, np.maximum(v, np.float32(1e-30)), out=r)
        inside[z0 // plan.rows()] = r[v > threshold]

    plan.run_slabs(work)
    values = np.concatenate(inside)
    return (float(np.median(values)) if values.size else 0.0), threshold
